// Package daemontest tests a daemon's binary the way an operator uses it
// (STYLE 18): it builds the real binary, runs its command line, starts it
// as a process on loopback, waits for its health listener, and stops it
// with SIGTERM, requiring a clean exit.
//
// A daemon's test package hands its TestMain to Main, so that the binary
// Build makes once per test process is removed afterwards:
//
//	func TestMain(m *testing.M) { daemontest.Main(m) }
//
//	func TestBinary(t *testing.T) {
//		bin := daemontest.Build(t) // skips in -short mode
//		daemontest.CheckInvalid(t, daemontest.Binary(bin), badConfigs)
//		daemontest.CheckValid(t, daemontest.Binary(bin), exampleConfig)
//		daemontest.CheckFlags(t, daemontest.Binary(bin), "chorus-mixnode")
//
//		p := daemontest.Start(t, exec.Command(bin, "-config", config))
//		p.WaitHTTP(metrics, "/readyz")
//		// ... the test ...
//		if !p.Stop() { // SIGTERM; reports anything but exit 0
//			t.FailNow()
//		}
//	}
//
// The command-line checks take a Command: the binary (Binary) or the
// daemon's main run in the test process, so that -validate is checked in
// process on every config and on the binary on a few.
//
// A Process captures the daemon's standard output and error in one log,
// shown when the test fails; it is killed, if still running, when the test
// ends.
package daemontest
