package replay

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tagFor returns a deterministic pseudo-random tag for (seed, i).
func tagFor(seed, i uint64) [32]byte {
	r := rand.NewPCG(seed, i)
	var t [32]byte
	for j := range 4 {
		binary.LittleEndian.PutUint64(t[8*j:], r.Uint64())
	}
	return t
}

func mustOpen(t testing.TB, dir string, epoch, capacity uint64, fp float64) *Filter {
	t.Helper()
	f, err := Open(dir, epoch, capacity, fp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestGeometry(t *testing.T) {
	for _, tt := range []struct {
		capacity uint64
		fp       float64
	}{
		{1, 0.1}, {1000, 1e-3}, {100_000, 1e-6}, {12_000_000, 1e-6}, {12_000_000, 1e-9}, {MaxCapacity, MinFPRate},
	} {
		blocks, k, err := geometry(tt.capacity, tt.fp)
		if err != nil {
			t.Fatalf("geometry(%d, %g): %v", tt.capacity, tt.fp, err)
		}
		bpt := float64(blocks) * blockBits / float64(tt.capacity)
		if got := blockedFPRate(bpt, k); got > tt.fp*modelMargin*1.0001 {
			t.Errorf("geometry(%d, %g) = %d blocks, k=%d: expected rate %g", tt.capacity, tt.fp, blocks, k, got)
		}
		// Not wasteful: 2% fewer blocks would miss the target (for
		// filters large enough for that to be meaningful).
		if blocks > 100 {
			if r, _ := bestK(bpt * 0.98); r <= tt.fp*modelMargin {
				t.Errorf("geometry(%d, %g) = %d blocks: more than needed", tt.capacity, tt.fp, blocks)
			}
		}
		if k < 1 || k > maxK {
			t.Errorf("k = %d", k)
		}
	}
	// The epoch the brief sizes for: 20 minutes at 10,000 packets/s.
	blocks, k, _ := geometry(12_000_000, 1e-6)
	t.Logf("12M tags at 1e-6: %d blocks, k=%d, %.1f MiB, %.1f bits/tag", blocks, k,
		float64(blocks*blockBytes+headerSize)/(1<<20), float64(blocks*blockBits)/12e6)

	for _, tt := range []struct {
		capacity uint64
		fp       float64
	}{
		{0, 1e-6}, {MaxCapacity + 1, 1e-6}, {1000, 0}, {1000, 0.5}, {1000, 1e-10}, {1000, math.NaN()}, {1000, math.Inf(1)},
	} {
		if _, _, err := geometry(tt.capacity, tt.fp); !errors.Is(err, ErrParams) {
			t.Errorf("geometry(%d, %g): %v", tt.capacity, tt.fp, err)
		}
		if _, err := Open(t.TempDir(), 1, tt.capacity, tt.fp); !errors.Is(err, ErrParams) {
			t.Errorf("Open(%d, %g): %v", tt.capacity, tt.fp, err)
		}
	}
}

// TestAgainstMap compares the filter with a map of every tag recorded: a
// recorded tag is always seen; a new one is seen only as a (rare) false
// positive.
func TestAgainstMap(t *testing.T) {
	f := mustOpen(t, t.TempDir(), 3, 50_000, 1e-6)
	model := map[[32]byte]bool{}
	var recorded [][32]byte
	rng := rand.New(rand.NewPCG(1, 2))
	falsePos := 0
	for i := range uint64(60_000) {
		var tag [32]byte
		if len(recorded) > 0 && rng.IntN(3) == 0 {
			tag = recorded[rng.IntN(len(recorded))]
		} else {
			tag = tagFor(9, i)
		}
		seen, err := f.TestAndSet(&tag)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case model[tag] && !seen:
			t.Fatalf("step %d: a recorded tag was not seen", i)
		case !model[tag] && seen:
			falsePos++ // not recorded: the filter did not change
		case !model[tag]:
			model[tag] = true
			recorded = append(recorded, tag)
		}
	}
	if got := f.Count(); got != uint64(len(model)) {
		t.Errorf("Count = %d, model holds %d", got, len(model))
	}
	if falsePos > 1 {
		t.Errorf("%d false positives among ~40k new tags at a 1e-6 filter", falsePos)
	}
	for tag := range model {
		if !f.contains(&tag) {
			t.Fatal("recorded tag lost")
		}
	}
}

// TestFalsePositiveRate fills a filter to capacity and measures the rate at
// which fresh tags are reported seen.
func TestFalsePositiveRate(t *testing.T) {
	const capacity, target = 200_000, 1e-3
	f := mustOpen(t, t.TempDir(), 1, capacity, target)
	for i := range uint64(capacity) {
		tag := tagFor(1, i)
		if _, err := f.TestAndSet(&tag); err != nil {
			t.Fatal(err)
		}
	}
	probes := 2_000_000
	if testing.Short() {
		probes = 200_000
	}
	hits := 0
	for i := range uint64(probes) {
		tag := tagFor(2, i)
		if f.contains(&tag) {
			hits++
		}
	}
	rate := float64(hits) / float64(probes)
	t.Logf("capacity %d, target %g: measured %g (%d of %d), bits set %.3f", capacity, target, rate, hits, probes, f.fillBits())
	if rate > 1.3*target || rate < 0.3*target {
		t.Errorf("measured false-positive rate %g, target %g", rate, target)
	}
}

func TestFull(t *testing.T) {
	f := mustOpen(t, t.TempDir(), 1, 100, 1e-6)
	for i := range uint64(100) {
		tag := tagFor(3, i)
		if seen, err := f.TestAndSet(&tag); seen || err != nil {
			t.Fatalf("tag %d: %v %v", i, seen, err)
		}
	}
	for i := range uint64(10) {
		tag := tagFor(4, i)
		if seen, err := f.TestAndSet(&tag); seen || !errors.Is(err, ErrFull) {
			t.Fatalf("new tag in a full filter: %v %v", seen, err)
		}
		// Refused, so not recorded.
		if f.contains(&tag) {
			t.Fatal("refused tag was recorded")
		}
	}
	// Replays are still reported as replays.
	tag := tagFor(3, 42)
	if seen, err := f.TestAndSet(&tag); !seen || err != nil {
		t.Fatalf("replay in a full filter: %v %v", seen, err)
	}
	if f.Count() != 100 {
		t.Errorf("Count = %d", f.Count())
	}
}

// TestConcurrentSameTag races goroutines on the same tags: exactly one of
// them may see each tag as new.
func TestConcurrentSameTag(t *testing.T) {
	f := mustOpen(t, t.TempDir(), 1, 1_000_000, 1e-6)
	const n, workers = 20_000, 8
	tags := make([][32]byte, n)
	for i := range tags {
		tags[i] = tagFor(5, uint64(i))
	}
	fresh := make([]atomic.Int32, n)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range tags {
				seen, err := f.TestAndSet(&tags[i])
				if err != nil {
					t.Error(err)
					return
				}
				if !seen {
					fresh[i].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for i := range fresh {
		if got := fresh[i].Load(); got != 1 {
			t.Fatalf("tag %d reported new %d times", i, got)
		}
	}
	if f.Count() != n {
		t.Errorf("Count = %d, want %d", f.Count(), n)
	}
}

func TestRestart(t *testing.T) {
	dir := t.TempDir()
	f, err := Open(dir, 11, 10_000, 1e-6)
	if err != nil {
		t.Fatal(err)
	}
	mem := f.MemoryBytes()
	for i := range uint64(1000) {
		tag := tagFor(6, i)
		f.TestAndSet(&tag)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	tag := tagFor(6, 0)
	if _, err := f.TestAndSet(&tag); !errors.Is(err, ErrClosed) {
		t.Fatalf("TestAndSet after Close: %v", err)
	}
	if err := f.Sync(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sync after Close: %v", err)
	}
	if f.Count() != 1000 {
		t.Errorf("Count after Close = %d", f.Count())
	}

	// Reopened with other parameters: the file's own are kept.
	g := mustOpen(t, dir, 11, 99_999, 1e-3)
	if g.Capacity() != 10_000 || g.FPRate() != 1e-6 || g.MemoryBytes() != mem || g.Count() != 1000 {
		t.Fatalf("reopened filter: capacity %d, rate %g, %d bytes, count %d", g.Capacity(), g.FPRate(), g.MemoryBytes(), g.Count())
	}
	for i := range uint64(1000) {
		tag := tagFor(6, i)
		if seen, err := g.TestAndSet(&tag); !seen || err != nil {
			t.Fatalf("tag %d not seen after restart: %v", i, err)
		}
	}
	tag = tagFor(7, 0)
	if seen, _ := g.TestAndSet(&tag); seen {
		t.Fatal("fresh tag seen after restart")
	}
}

// TestKill9 records tags in a child process, kills it with SIGKILL without
// letting it close or sync anything, and checks that every tag is seen by
// the filter reopened afterwards.
func TestKill9(t *testing.T) {
	dir := t.TempDir()
	const n = 5000
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$")
	cmd.Env = append(os.Environ(), "CHORUS_REPLAY_HELPER_DIR="+dir, "CHORUS_REPLAY_HELPER_N="+strconv.Itoa(n))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	ready := false
	for sc.Scan() {
		if sc.Text() == "recorded" {
			ready = true
			break
		}
	}
	if !ready {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("helper did not record its tags")
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait()

	f := mustOpen(t, dir, 7, 100_000, 1e-6)
	if f.Count() != n {
		t.Errorf("Count after kill = %d, want %d", f.Count(), n)
	}
	for i := range uint64(n) {
		tag := tagFor(8, i)
		if seen, err := f.TestAndSet(&tag); !seen || err != nil {
			t.Fatalf("tag %d recorded before kill -9 not seen: %v", i, err)
		}
	}
}

// TestKillHelper is the child process of TestKill9.
func TestKillHelper(t *testing.T) {
	dir := os.Getenv("CHORUS_REPLAY_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process of TestKill9")
	}
	n, _ := strconv.Atoi(os.Getenv("CHORUS_REPLAY_HELPER_N"))
	f, err := Open(dir, 7, 100_000, 1e-6)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := range uint64(n) {
		tag := tagFor(8, i)
		if _, err := f.TestAndSet(&tag); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	fmt.Println("recorded")
	time.Sleep(time.Minute) // killed long before
	os.Exit(1)
}

func TestCorrupt(t *testing.T) {
	good := func(t *testing.T) (string, string) {
		dir := t.TempDir()
		f, err := Open(dir, 5, 1000, 1e-6)
		if err != nil {
			t.Fatal(err)
		}
		tag := tagFor(1, 1)
		f.TestAndSet(&tag)
		f.Close()
		return dir, filepath.Join(dir, fileName(5))
	}
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"empty", func(t *testing.T, p string) { os.Truncate(p, 0) }},
		{"truncated header", func(t *testing.T, p string) { os.Truncate(p, 100) }},
		{"truncated bitmap", func(t *testing.T, p string) { os.Truncate(p, headerSize+64) }},
		{"extended", func(t *testing.T, p string) {
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()+64)
		}},
		{"magic", func(t *testing.T, p string) { flip(t, p, 0) }},
		{"version", func(t *testing.T, p string) { flip(t, p, 8) }},
		{"k", func(t *testing.T, p string) { flip(t, p, 12) }},
		{"epoch", func(t *testing.T, p string) { flip(t, p, 16) }},
		{"blocks", func(t *testing.T, p string) { flip(t, p, 32) }},
		{"salt", func(t *testing.T, p string) { flip(t, p, 40) }},
		{"crc", func(t *testing.T, p string) { flip(t, p, offCRC) }},
		{"zeros", func(t *testing.T, p string) {
			st, _ := os.Stat(p)
			os.WriteFile(p, make([]byte, st.Size()), 0o600)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, path := good(t)
			tt.damage(t, path)
			if _, err := Open(dir, 5, 1000, 1e-6); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want ErrCorrupt", err)
			}
			// The damaged file was left alone for the operator.
			if _, err := os.Stat(path); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenSet(SetConfig{Dir: dir, Capacity: 1000, FPRate: 1e-6}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("OpenSet: %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestOtherEpochsFile: a filter file renamed to another epoch's name is
// refused (its tags are for another key).
func TestOtherEpochsFile(t *testing.T) {
	dir := t.TempDir()
	f := mustOpen(t, dir, 5, 1000, 1e-6)
	f.Close()
	if err := os.Rename(filepath.Join(dir, fileName(5)), filepath.Join(dir, fileName(6))); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, 6, 1000, 1e-6); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestLockedAndRemove(t *testing.T) {
	dir := t.TempDir()
	f := mustOpen(t, dir, 2, 1000, 1e-6)
	if _, err := Open(dir, 2, 1000, 1e-6); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if err := Remove(dir, 2); !errors.Is(err, ErrLocked) {
		t.Fatalf("Remove of an open filter: %v, want ErrLocked", err)
	}
	tag := tagFor(1, 2)
	f.TestAndSet(&tag)
	f.Close()
	if err := Remove(dir, 2); err != nil {
		t.Fatal(err)
	}
	if err := Remove(dir, 2); err != nil {
		t.Fatalf("Remove of a missing filter: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, fileName(2))); !os.IsNotExist(err) {
		t.Fatalf("file still there: %v", err)
	}
	g := mustOpen(t, dir, 2, 1000, 1e-6)
	if seen, _ := g.TestAndSet(&tag); seen {
		t.Fatal("tag of a removed filter still seen")
	}
}

// TestFiles checks that creating filters leaves only the filter files, mode 0600, in a directory of mode 0700.
func TestFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replay")
	mustOpen(t, dir, 1, 1000, 1e-6)
	mustOpen(t, dir, 2, 1000, 1e-6)
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("%d entries in the directory", len(ents))
	}
	for _, e := range ents {
		st, _ := os.Stat(filepath.Join(dir, e.Name()))
		if st.Mode().Perm() != fileMode {
			t.Errorf("%s: mode %v", e.Name(), st.Mode())
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != dirMode {
		t.Errorf("dir mode %v", st.Mode())
	}
	for _, tt := range []struct {
		name string
		e    uint64
		ok   bool
	}{
		{"0.replay", 0, true}, {"18446744073709551615.replay", math.MaxUint64, true},
		{"01.replay", 0, false}, {"+1.replay", 0, false}, {"1.replay.tmp", 0, false}, {".replay", 0, false}, {"x.replay", 0, false},
	} {
		if e, ok := parseFileName(tt.name); ok != tt.ok || e != tt.e {
			t.Errorf("parseFileName(%q) = %d %v", tt.name, e, ok)
		}
	}
}
