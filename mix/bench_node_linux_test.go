//go:build linux

package mix

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	dto "github.com/prometheus/client_model/go"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
)

// The node of BenchmarkNodeThroughput/node-process is this test binary run
// again: TestNodeBenchChild with these variables set.
const (
	nodeChildEnv    = "CHORUS_MIX_BENCH_NODE_SINK" // the sink's address
	nodeChildCPUEnv = "CHORUS_MIX_BENCH_NODE_CPU"  // the CPU to pin the child to
	nodeProfileEnv  = "CHORUS_MIX_BENCH_NODE_PROFILE"
	childPrefix     = "nodebench: "
)

// TestNodeBenchChild is the node under test of
// BenchmarkNodeThroughput/node-process when that benchmark runs it in a
// child process; otherwise it is skipped. It starts the mix of startSmallNet
// (the same documents) forwarding to the sink at the given address, prints
// its address, epoch and Sphinx key for the epoch, then answers commands on
// stdin until it closes:
//
//	cpu              its CPU time (user + system, ns)
//	prof-start FILE  start a CPU profile
//	prof-stop        stop it
//	stats            mean unwrap time (ns) and the packets dropped
func TestNodeBenchChild(t *testing.T) {
	sinkAddr := os.Getenv(nodeChildEnv)
	if sinkAddr == "" {
		t.Skip("run by BenchmarkNodeThroughput/node-process")
	}
	if cpu, err := strconv.Atoi(os.Getenv(nodeChildCPUEnv)); err == nil {
		if err := pinProcess(1 << cpu); err != nil {
			t.Logf("no CPU affinity: %v", err)
		}
	}
	s := schedule(t, time.Hour, 30*time.Minute)
	e := s.Now()
	dir := newTestDir(3)
	dir.AddStatic("mix-1-0", 1, sinkAddr, e-2, e+3)
	dir.AddStatic("mix-2-0", 2, "127.0.0.1:9", e-2, e+3)
	dir.AddStatic("provider-0", pki.ProviderLayer, "127.0.0.1:10", e-2, e+3)
	dir.AddStatic("provider-1", pki.ProviderLayer, "127.0.0.1:11", e-2, e+3)
	mix := startNode(t, dir, s, "mix-0-0", 0, listen(t), "", func(c *Config) {
		c.DisableLoops = true
		c.MaxPacketRate = 100
	})
	waitForReady(t, mix)
	key, ok := mix.p.keys.Key(e)
	if !ok {
		t.Fatal("no key")
	}
	fmt.Printf("%sready %s %d %x\n", childPrefix, mix.addr, e, key.Scalar()[:])

	var prof *os.File
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "cpu":
			fmt.Printf("%scpu %d\n", childPrefix, cpuTime())
		case "prof-start":
			var err error
			if prof, err = os.Create(f[1]); err == nil {
				err = pprof.StartCPUProfile(prof)
			}
			if err != nil {
				t.Error(err)
			}
			fmt.Printf("%sok\n", childPrefix)
		case "prof-stop":
			pprof.StopCPUProfile()
			if prof != nil {
				prof.Close()
			}
			fmt.Printf("%sok\n", childPrefix)
		case "stats":
			var h dto.Metric
			mix.p.m.unwrap.Write(&h)
			unwrap := h.GetHistogram().GetSampleSum() / float64(h.GetHistogram().GetSampleCount())
			var drops float64
			for _, v := range dropCounts(mix) {
				drops += v
			}
			fmt.Printf("%sstats %d %d\n", childPrefix, int64(unwrap*1e9), int64(drops))
		}
	}
}

// cpuTime is this process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pinProcess sets the CPU affinity of every thread of this process to
// mask; threads started later inherit it from the thread that starts them.
func pinProcess(mask uint64) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), unsafe.Sizeof(mask), uintptr(unsafe.Pointer(&mask)))
		if errno != 0 && errno != syscall.ESRCH {
			return errno
		}
	}
	return nil
}

// nodeChild is the node process under test, seen from the benchmark.
type nodeChild struct {
	b     *testing.B
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	addr  string
	epoch uint64
	key   *keys.SphinxPrivateKey
}

func startNodeChild(b *testing.B, sinkAddr string, cpu int) *nodeChild {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestNodeBenchChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), nodeChildEnv+"="+sinkAddr, "GOMAXPROCS=1")
	if cpu >= 0 {
		cmd.Env = append(cmd.Env, nodeChildCPUEnv+"="+strconv.Itoa(cpu))
	}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &nodeChild{b: b, cmd: cmd, in: in, out: bufio.NewScanner(out)}
	b.Cleanup(func() {
		in.Close() // the child's cue to stop
		done := make(chan struct{})
		go func() { io.Copy(io.Discard, out); cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	f := c.reply("ready")
	if len(f) != 3 {
		b.Fatalf("node child: ready %v", f)
	}
	c.addr = f[0]
	if c.epoch, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		b.Fatal(err)
	}
	raw, err := hex.DecodeString(f[2])
	if err != nil {
		b.Fatal(err)
	}
	if c.key, err = keys.NewSphinxPrivateKey(raw); err != nil {
		b.Fatal(err)
	}
	return c
}

// reply reads the child's next reply, which must be of the given kind,
// and returns its fields after the kind.
func (c *nodeChild) reply(kind string) []string {
	c.b.Helper()
	for c.out.Scan() {
		line, ok := strings.CutPrefix(c.out.Text(), childPrefix)
		if !ok {
			continue // the test framework's own output
		}
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != kind {
			c.b.Fatalf("node child: got %q, want %s", line, kind)
		}
		return f[1:]
	}
	c.b.Fatalf("node child: exited before %s (%v)", kind, c.out.Err())
	return nil
}

func (c *nodeChild) ask(cmd, kind string) []string {
	c.b.Helper()
	if _, err := io.WriteString(c.in, cmd+"\n"); err != nil {
		c.b.Fatal(err)
	}
	return c.reply(kind)
}

func (c *nodeChild) cpu() time.Duration {
	c.b.Helper()
	ns, err := strconv.ParseInt(c.ask("cpu", "cpu")[0], 10, 64)
	if err != nil {
		c.b.Fatal(err)
	}
	return time.Duration(ns)
}

func benchNodeProcess(b *testing.B) {
	// The node on CPU 0, this process (the feeder and the sink) on the
	// others; without two CPUs, no pinning.
	nodeCPU, rest := -1, uint64(0)
	if n := runtime.NumCPU(); n >= 2 && n <= 64 {
		nodeCPU = 0
		rest = (1<<n - 1) &^ 1
	}
	geo, err := sphinx.NewGeometry(pkitest.Geometry(3).Hops, pkitest.Geometry(3).UserPayloadLength, pkitest.Geometry(3).WithSURB)
	if err != nil {
		b.Fatal(err)
	}
	s := &sink{ln: listen(b)}
	startSink(b, s, geo.PacketLength())
	child := startNodeChild(b, s.ln.Addr().String(), nodeCPU)

	e := child.epoch
	mix0 := pkitest.NewNode("mix-0-0", pki.RoleMix, e, "tcp://"+child.addr).Descriptor
	mix0.SphinxKeys = map[uint64]keys.SphinxPublicKey{e: child.key.Public()}
	mix1 := pkitest.NewNode("mix-1-0", pki.RoleMix, e, "tcp://"+s.ln.Addr().String()).Descriptor
	path := []sphinx.PathHop{
		hopFor(b, mix0, e, sphinx.NodeDelay{Delay: 0}),
		hopFor(b, mix1, e, sphinx.Recipient{ID: recipient}),
	}
	c, err := dialAs(b, "provider-0", child.addr, mix0.LinkKey, geo.PacketLength())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	count := max(b.N, 2000)
	pkts, index := benchPackets(b, geo, child.key, path, 2*count)
	st := newStream(b, c, s, pkts, index)

	if rest != 0 {
		if err := pinProcess(rest); err != nil {
			b.Logf("no CPU affinity: %v", err)
		}
		defer pinProcess(rest | 1)
	}
	profile := os.Getenv(nodeProfileEnv)
	if profile != "" {
		child.ask("prof-start "+profile, "ok")
	}
	cpu0 := child.cpu()
	b.ResetTimer()
	elapsed := st.run(0, count, 0)
	b.StopTimer()
	cpu := child.cpu() - cpu0
	if profile != "" {
		child.ask("prof-stop", "ok")
	}
	rate := float64(count) / elapsed.Seconds()
	sp50, sp99 := st.latencies(0, count)
	st.run(count, 2*count, time.Duration(float64(time.Second)/(rate/2)))
	p50, p99 := st.latencies(count, 2*count)

	stats := child.ask("stats", "stats")
	unwrapNs, _ := strconv.ParseInt(stats[0], 10, 64)
	drops, _ := strconv.ParseInt(stats[1], 10, 64)
	perPacket := cpu.Seconds() / float64(count)
	b.ReportMetric(rate, "packets/s")
	b.ReportMetric(perPacket*1e6, "node-cpu-µs/pkt")
	b.ReportMetric(1/perPacket, "packets/s/node-core")
	// How busy the node's one core was: near 1, the node was the
	// bottleneck of the saturated run.
	b.ReportMetric(cpu.Seconds()/elapsed.Seconds(), "node-core-busy")
	// Wall time around hop.Process, so it includes time the node's CPU
	// spent on other processes: for the node's breakdown, profile it.
	b.ReportMetric(float64(unwrapNs)/1e3, "unwrap-µs")
	reportLatencies(b, "", p50, p99)
	reportLatencies(b, "-saturated", sp50, sp99)
	if drops != 0 {
		b.Errorf("the node dropped %d packets", drops)
	}
}
