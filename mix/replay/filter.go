package replay

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Errors. Each is wrapped with context; classify them with errors.Is.
var (
	// ErrFull: the filter holds as many tags as it was sized for. The
	// packet is refused (and should be counted); its tag is not recorded.
	ErrFull = errors.New("replay: filter full")
	// ErrCorrupt: a filter file exists but its header is damaged, belongs
	// to another epoch or its length disagrees with the header. The filter
	// is not used: starting afresh would accept replays of every packet it
	// had seen. See the package documentation for the operator's way out.
	ErrCorrupt = errors.New("replay: corrupt filter file")
	// ErrLocked: the filter file is open elsewhere (another process, or
	// another Filter of this process).
	ErrLocked = errors.New("replay: filter file in use")
	// ErrClosed: the filter was closed.
	ErrClosed = errors.New("replay: filter closed")
	// ErrParams: capacity or false-positive rate out of range.
	ErrParams = errors.New("replay: bad filter parameters")
)

// File layout. The header fills the first page so the bitmap is page
// aligned; the static part is little-endian and covered by a CRC-32C, the
// two counters are native-endian words updated atomically in place.
//
//	0   magic "CHRSRPLY"
//	8   version   uint32
//	12  k         uint32 bits set per tag
//	16  epoch     uint64
//	24  capacity  uint64 tags the filter was sized for
//	32  blocks    uint64 64-byte blocks in the bitmap
//	40  salt      uint64 odd multiplier choosing the block
//	48  fpRate    float64 target false-positive rate at capacity
//	56  crc       uint32 CRC-32C of bytes 0..55
//	64  count     uint64 tags recorded
//	72  bitsSet   uint64 bits set in the bitmap
//	4096 bitmap   blocks × 64 bytes
const (
	magic       = "CHRSRPLY"
	version     = 1
	headerSize  = 4096
	staticSize  = 56
	offCRC      = 56
	offCount    = 64
	offBitsSet  = 72
	fileSuffix  = ".replay"
	tempPattern = ".replay-*.tmp"
	fileMode    = 0o600
	dirMode     = 0o700
	numStripes  = 256 // power of two
	maxFileSize = 1 << 40
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type header struct {
	k        uint32
	epoch    uint64
	capacity uint64
	blocks   uint64
	salt     uint64
	fpRate   float64
}

func (h *header) size() int64 { return headerSize + int64(h.blocks)*blockBytes }

func (h *header) encode() []byte {
	b := make([]byte, headerSize)
	copy(b, magic)
	binary.LittleEndian.PutUint32(b[8:], version)
	binary.LittleEndian.PutUint32(b[12:], h.k)
	binary.LittleEndian.PutUint64(b[16:], h.epoch)
	binary.LittleEndian.PutUint64(b[24:], h.capacity)
	binary.LittleEndian.PutUint64(b[32:], h.blocks)
	binary.LittleEndian.PutUint64(b[40:], h.salt)
	binary.LittleEndian.PutUint64(b[48:], math.Float64bits(h.fpRate))
	binary.LittleEndian.PutUint32(b[offCRC:], crc32.Checksum(b[:staticSize], castagnoli))
	return b
}

// decodeHeader parses and checks the static header; the reason it gives
// for a bad header is for the operator and never contains tag data.
func decodeHeader(b []byte) (header, error) {
	var h header
	switch {
	case len(b) < headerSize:
		return h, errors.New("short header")
	case string(b[:8]) != magic:
		return h, errors.New("not a replay filter")
	case crc32.Checksum(b[:staticSize], castagnoli) != binary.LittleEndian.Uint32(b[offCRC:]):
		return h, errors.New("header checksum mismatch")
	case binary.LittleEndian.Uint32(b[8:]) != version:
		return h, fmt.Errorf("version %d, want %d", binary.LittleEndian.Uint32(b[8:]), version)
	}
	h.k = binary.LittleEndian.Uint32(b[12:])
	h.epoch = binary.LittleEndian.Uint64(b[16:])
	h.capacity = binary.LittleEndian.Uint64(b[24:])
	h.blocks = binary.LittleEndian.Uint64(b[32:])
	h.salt = binary.LittleEndian.Uint64(b[40:])
	h.fpRate = math.Float64frombits(binary.LittleEndian.Uint64(b[48:]))
	switch {
	case h.k < 1 || h.k > maxK:
		return h, fmt.Errorf("k %d out of range", h.k)
	case h.blocks == 0 || h.blocks > (maxFileSize-headerSize)/blockBytes:
		return h, fmt.Errorf("%d blocks out of range", h.blocks)
	case h.capacity == 0 || h.capacity > MaxCapacity:
		return h, fmt.Errorf("capacity %d out of range", h.capacity)
	case h.salt&1 == 0:
		return h, errors.New("even salt")
	}
	return h, nil
}

// fileName is the name of epoch's filter file in the directory.
func fileName(epoch uint64) string { return strconv.FormatUint(epoch, 10) + fileSuffix }

// parseFileName returns the epoch of a filter file name.
func parseFileName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, fileSuffix)
	if !ok {
		return 0, false
	}
	e, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(e, 10) != s {
		return 0, false
	}
	return e, true
}

// Filter is the replay filter of one Sphinx key (one epoch). It is safe
// for concurrent use.
type Filter struct {
	epoch    uint64
	capacity uint64
	fpRate   float64
	k        int
	blocks   uint64
	salt     uint64

	file    *os.File
	mem     []byte         // the whole mapped file
	words   []uint64       // the bitmap, inside mem
	count   *atomic.Uint64 // inside mem
	bitsSet *atomic.Uint64 // inside mem

	// Every access to a block of the bitmap holds the stripe of that block.
	stripes [numStripes]stripe

	// life guards the mapping for everything but TestAndSet: Close holds
	// it exclusively (and every stripe) while it unmaps.
	life       sync.RWMutex
	closed     bool // under life and every stripe
	finalCount uint64
	closeErr   error
}

type stripe struct {
	sync.Mutex
	_ [64 - unsafe.Sizeof(sync.Mutex{})]byte // one cache line each
}

// Open opens the replay filter of epoch in dir, creating the file (and dir,
// mode 0700) if it does not exist. A new filter is sized so that it holds
// capacity tags with a false-positive rate of at most fpRate; an existing
// filter keeps the size it was created with, and capacity and fpRate are
// then only checked for range. A file that exists but is damaged is an
// error wrapping ErrCorrupt, never a fresh filter.
func Open(dir string, epoch, capacity uint64, fpRate float64) (*Filter, error) {
	blocks, k, err := geometry(capacity, fpRate)
	if err != nil {
		return nil, fmt.Errorf("open replay filter: %w", err)
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("open replay filter: %w", err)
	}
	path := filepath.Join(dir, fileName(epoch))
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		var salt [8]byte
		if _, err := io.ReadFull(rand.Reader, salt[:]); err != nil {
			return nil, fmt.Errorf("open replay filter: %w", err)
		}
		h := header{k: uint32(k), epoch: epoch, capacity: capacity, blocks: blocks, fpRate: fpRate,
			salt: binary.LittleEndian.Uint64(salt[:]) | 1}
		if err := create(path, &h); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("open replay filter: %w", err)
		}
		file, err = os.OpenFile(path, os.O_RDWR, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open replay filter: %w", err)
	}
	f, err := mapFile(file, epoch)
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("open replay filter %s: %w", path, err)
	}
	return f, nil
}

// mapFile locks, checks and maps an open filter file.
func mapFile(file *os.File, epoch uint64) (*Filter, error) {
	fd := int(file.Fd())
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, err
	}
	st, err := file.Stat()
	if err != nil {
		return nil, err
	}
	raw := make([]byte, headerSize)
	if st.Size() < headerSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the header", ErrCorrupt, st.Size())
	}
	if _, err := file.ReadAt(raw, 0); err != nil {
		return nil, err
	}
	h, err := decodeHeader(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if h.epoch != epoch {
		return nil, fmt.Errorf("%w: file is for epoch %d", ErrCorrupt, h.epoch)
	}
	if st.Size() != h.size() {
		return nil, fmt.Errorf("%w: %d bytes, header says %d", ErrCorrupt, st.Size(), h.size())
	}
	mem, err := unix.Mmap(fd, 0, int(h.size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map filter: %w", err)
	}
	// Read the bitmap in ahead of the first packets (asynchronously).
	_ = unix.Madvise(mem, unix.MADV_WILLNEED)
	f := &Filter{
		epoch:    h.epoch,
		capacity: h.capacity,
		fpRate:   h.fpRate,
		k:        int(h.k),
		blocks:   h.blocks,
		salt:     h.salt,
		file:     file,
		mem:      mem,
		words:    unsafe.Slice((*uint64)(unsafe.Pointer(&mem[headerSize])), h.blocks*blockWords),
		count:    (*atomic.Uint64)(unsafe.Pointer(&mem[offCount])),
		bitsSet:  (*atomic.Uint64)(unsafe.Pointer(&mem[offBitsSet])),
	}
	return f, nil
}

// create writes a new filter file at path, atomically: a crash leaves
// either no file or a complete one. An existing file is never replaced
// (the error then wraps fs.ErrExist).
func create(path string, h *header) error {
	if h.size() > maxFileSize {
		return fmt.Errorf("%w: filter of %d bytes", ErrParams, h.size())
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPattern)
	if err != nil {
		return fmt.Errorf("create filter file: %w", err)
	}
	name := tmp.Name()
	defer os.Remove(name)
	err = tmp.Chmod(fileMode)
	if err == nil {
		_, err = tmp.Write(h.encode())
	}
	if err == nil {
		err = allocate(tmp, h.size())
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(name, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("create filter file: %w", err)
	}
	return nil
}

// allocate makes the file size bytes long with its blocks reserved on
// disk, so that a store into the mapping can never fault for want of
// space (a write to a hole on a full disk is a SIGBUS, which would kill
// the node).
func allocate(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("allocate: %w", err)
	}
	// No fallocate here: write the zeros.
	st, err := f.Stat()
	if err != nil {
		return err
	}
	zeros := make([]byte, 1<<20)
	for off := st.Size(); off < size; off += int64(len(zeros)) {
		n := min(int64(len(zeros)), size-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return fmt.Errorf("allocate: %w", err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// TestAndSet records tag and reports whether it was recorded before (or
// collides with recorded tags: a false positive). A packet whose tag was
// seen must be dropped. When the filter is full, a tag not seen before is
// not recorded and TestAndSet returns ErrFull: the packet must be refused.
// After Close it returns ErrClosed.
//
// When TestAndSet returns, the tag is in the kernel's page cache: it
// survives the process being killed at any later moment, and reaches the
// disk by the next Sync.
//
// Two concurrent calls with the same tag never both report it unseen.
func (f *Filter) TestAndSet(tag *[32]byte) (seen bool, err error) {
	p := locate(tag, f.salt, f.blocks, f.k)
	s := &f.stripes[p.block&(numStripes-1)]
	s.Lock()
	defer s.Unlock()
	if f.closed {
		return false, ErrClosed
	}
	w := (*[blockWords]uint64)(f.words[p.block*blockWords:])
	seen = true
	for i := range w {
		if w[i]&p.masks[i] != p.masks[i] {
			seen = false
			break
		}
	}
	if seen {
		return true, nil
	}
	if f.count.Add(1) > f.capacity {
		f.count.Add(^uint64(0))
		return false, ErrFull
	}
	var flipped int
	for i := range w {
		flipped += bits.OnesCount64(p.masks[i] &^ w[i])
		w[i] |= p.masks[i]
	}
	f.bitsSet.Add(uint64(flipped))
	return false, nil
}

// Sync writes the filter's dirty pages to disk and waits for them
// (msync(MS_SYNC)). Tags recorded before Sync began then survive a power
// failure as well as a crash.
func (f *Filter) Sync() error {
	f.life.RLock()
	defer f.life.RUnlock()
	if f.closed {
		return ErrClosed
	}
	if err := unix.Msync(f.mem, unix.MS_SYNC); err != nil {
		return fmt.Errorf("sync replay filter: %w", err)
	}
	return nil
}

// Close syncs and unmaps the filter and closes its file. It is idempotent;
// a concurrent TestAndSet waits for it and then returns ErrClosed.
func (f *Filter) Close() error {
	f.life.Lock()
	defer f.life.Unlock()
	if f.closed {
		return f.closeErr
	}
	for i := range f.stripes {
		f.stripes[i].Lock()
	}
	defer func() {
		for i := range f.stripes {
			f.stripes[i].Unlock()
		}
	}()
	f.finalCount = f.count.Load()
	err := unix.Msync(f.mem, unix.MS_SYNC)
	if uerr := unix.Munmap(f.mem); err == nil {
		err = uerr
	}
	if cerr := f.file.Close(); err == nil {
		err = cerr
	}
	f.closed = true
	f.mem, f.words, f.count, f.bitsSet = nil, nil, nil, nil
	if err != nil {
		f.closeErr = fmt.Errorf("close replay filter: %w", err)
	}
	return f.closeErr
}

// Epoch returns the epoch the filter belongs to.
func (f *Filter) Epoch() uint64 { return f.epoch }

// Capacity returns how many tags the filter holds before it is full.
func (f *Filter) Capacity() uint64 { return f.capacity }

// FPRate returns the false-positive rate the filter was sized for: the
// expected rate once it holds Capacity tags (lower before).
func (f *Filter) FPRate() float64 { return f.fpRate }

// Count returns how many tags the filter holds.
func (f *Filter) Count() uint64 {
	f.life.RLock()
	defer f.life.RUnlock()
	if f.closed {
		return f.finalCount
	}
	return min(f.count.Load(), f.capacity)
}

// MemoryBytes returns the size of the filter's mapping: the bitmap plus
// one page of header. It is file-backed shared memory (page cache), all of
// it resident once packets have touched every page.
func (f *Filter) MemoryBytes() int64 { return headerSize + int64(f.blocks)*blockBytes }

// Remove erases the filter file of epoch in dir: it overwrites the bitmap
// with zeros, syncs and removes the file. Call it when the epoch's Sphinx
// key is retired, after closing the Filter (it returns ErrLocked while the
// filter is open). A missing file is not an error.
//
// The bitmap is erased because it is a record of which packets passed
// through this node under that key.
func Remove(dir string, epoch uint64) error {
	path := filepath.Join(dir, fileName(epoch))
	if err := erase(path); err != nil {
		return fmt.Errorf("remove replay filter %s: %w", path, err)
	}
	return nil
}

func erase(path string) error {
	file, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer file.Close()
	if err := unix.Flock(int(file.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return ErrLocked
		}
		return err
	}
	st, err := file.Stat()
	if err != nil {
		return err
	}
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < st.Size(); off += int64(len(zeros)) {
		n := min(int64(len(zeros)), st.Size()-off)
		if _, err := file.WriteAt(zeros[:n], off); err != nil {
			return err
		}
	}
	if err := file.Sync(); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}
