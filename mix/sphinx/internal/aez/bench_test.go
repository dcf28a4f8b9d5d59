package aez

import "testing"

func benchPaths(b *testing.B, f func(b *testing.B)) {
	saved := useAESNI
	defer func() { useAESNI = saved }()
	for _, ni := range []bool{true, false} {
		name := "generic"
		if ni {
			name = "aesni"
		}
		b.Run(name, func(b *testing.B) {
			if ni && !saved {
				b.Skip("no AES-NI on this machine")
			}
			useAESNI = ni
			f(b)
		})
	}
}

// BenchmarkEncrypt2K is the Sphinx shape: 48-byte key, 16-byte nonce, no
// AD, tau = 0, in place.
func BenchmarkEncrypt2K(b *testing.B) {
	benchPaths(b, func(b *testing.B) {
		key := make([]byte, 48)
		nonce := make([]byte, 16)
		buf := make([]byte, 2048)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			Encrypt(key, nonce, nil, 0, buf, buf[:0])
		}
	})
}

func BenchmarkDecrypt2K(b *testing.B) {
	benchPaths(b, func(b *testing.B) {
		key := make([]byte, 48)
		nonce := make([]byte, 16)
		buf := make([]byte, 2048)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			Decrypt(key, nonce, nil, 0, buf, buf[:0])
		}
	})
}
