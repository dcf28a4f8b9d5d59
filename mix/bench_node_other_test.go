//go:build !linux

package mix

import "testing"

func benchNodeProcess(b *testing.B) {
	b.Skip("the node-process measurement pins CPUs and reads rusage: Linux only")
}
