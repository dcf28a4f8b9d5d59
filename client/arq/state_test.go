package arq_test

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/client/arq"
)

// persist is what client/store does: encode the snapshot, decode it
// after a restart, restore.
func persist(t *testing.T, tr *arq.Tracker, cfg arq.Config) *arq.Tracker {
	t.Helper()
	b, err := json.Marshal(tr.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var st arq.State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	out, err := arq.Restore(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func equalStates(a, b arq.State) bool {
	return slices.EqualFunc(a.Messages, b.Messages, func(x, y arq.MessageState) bool {
		return x.ID == y.ID && slices.EqualFunc(x.Fragments, y.Fragments, func(p, q arq.FragmentState) bool {
			return p.Acked == q.Acked && p.Attempts == q.Attempts && p.Deadline.Equal(q.Deadline) && slices.Equal(p.SURBs, q.SURBs)
		})
	})
}

func TestSnapshotRestore(t *testing.T) {
	tr, _ := arq.New(testConfig)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	id := arq.MessageID{1}
	frag := func(i int) arq.FragmentID { return arq.FragmentID{Message: id, Index: i} }
	_ = tr.Track(id, 4)
	_ = tr.Track(arq.MessageID{2}, 1) // unsent
	// Fragment 0 acknowledged, 1 in flight, 2 waiting to be sent again
	// (already listed once), 3 unsent.
	_, _, _ = tr.Sent(frag(0), arq.SURBID{10}, time.Second, now)
	_, _, _ = tr.Sent(frag(2), arq.SURBID{12}, time.Second, now)
	if _, ok := tr.Acked(arq.SURBID{10}); !ok {
		t.Fatal("ACK not accepted")
	}
	later := now.Add(10 * time.Second)
	if e := tr.Due(later); !slices.Equal(e.Retransmit, []arq.FragmentID{frag(2)}) {
		t.Fatalf("due: %+v", e)
	}
	_, _, _ = tr.Sent(frag(1), arq.SURBID{11}, time.Second, later)

	re := persist(t, tr, testConfig)
	if !equalStates(tr.Snapshot(), re.Snapshot()) {
		t.Fatalf("state changed in the round trip:\n%+v\n%+v", tr.Snapshot(), re.Snapshot())
	}
	// The restored tracker lists the waiting fragment again (the process
	// that was told may have died before queueing it), and nothing else.
	if e := re.Due(later); !slices.Equal(e.Retransmit, []arq.FragmentID{frag(2)}) || len(e.Failed) != 0 {
		t.Fatalf("first Due after restore: %+v", e)
	}
	if e := re.Due(later); !e.Empty() {
		t.Fatalf("second Due after restore: %+v", e)
	}
	// SURBs of the snapshot are recognised; an acknowledged fragment stays
	// acknowledged.
	if a, ok := re.Acked(arq.SURBID{11}); !ok || a.Fragment != frag(1) {
		t.Errorf("Acked after restore: %+v %v", a, ok)
	}
	if _, _, err := re.Sent(frag(0), arq.SURBID{20}, 0, later); !errors.Is(err, arq.ErrAcknowledged) {
		t.Errorf("Sent for an acknowledged fragment after restore: %v", err)
	}
	if n, _, err := re.Sent(frag(2), arq.SURBID{21}, 0, later); err != nil || n != 2 {
		t.Errorf("resend after restore: attempt %d, %v", n, err)
	}

	// A smaller MaxAttempts after a restart fails what has used it up.
	strict := testConfig
	strict.MaxAttempts = 1
	re = persist(t, tr, strict)
	if e := re.Due(later); !slices.Equal(e.Failed, []arq.MessageID{id}) || len(e.Retired) != 2 {
		t.Fatalf("Due under a smaller bound: %+v", e)
	}
}

func TestRestoreRejects(t *testing.T) {
	now := time.Now()
	one := func(fs ...arq.FragmentState) arq.State {
		return arq.State{Messages: []arq.MessageState{{ID: arq.MessageID{1}, Fragments: fs}}}
	}
	for name, st := range map[string]arq.State{
		"no fragments":         one(),
		"negative attempts":    one(arq.FragmentState{Attempts: -1}),
		"acked with SURBs":     one(arq.FragmentState{Acked: true, Attempts: 1, SURBs: []arq.SURBID{{1}}}, arq.FragmentState{}),
		"SURBs for no attempt": one(arq.FragmentState{SURBs: []arq.SURBID{{1}}}),
		"deadline unsent":      one(arq.FragmentState{Deadline: now}),
		"all acked":            one(arq.FragmentState{Acked: true, Attempts: 1}),
		"SURB twice":           one(arq.FragmentState{Attempts: 2, SURBs: []arq.SURBID{{1}, {1}}}),
		"message twice": {Messages: []arq.MessageState{
			{ID: arq.MessageID{1}, Fragments: []arq.FragmentState{{}}},
			{ID: arq.MessageID{1}, Fragments: []arq.FragmentState{{}}},
		}},
	} {
		if _, err := arq.Restore(testConfig, st); !errors.Is(err, arq.ErrInvalidState) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := arq.Restore(arq.Config{}, arq.State{}); err == nil {
		t.Error("Restore with an invalid config")
	}
}

// TestRandomOperations drives a tracker with random sends, ACKs (timely,
// late, duplicated, forged), clock steps and restarts through a snapshot,
// and checks the promises: a fragment is acknowledged at most once and
// never listed again after; a message ends once, delivered or failed;
// no fragment is sent more than MaxAttempts times; and in the end every
// message has ended.
func TestRandomOperations(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 99))
		cfg := arq.Config{MaxAttempts: 1 + rng.IntN(5), Slack: time.Second, MaxSlack: 5 * time.Second}
		tr, _ := arq.New(cfg)
		now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

		type sent struct {
			surb arq.SURBID
			f    arq.FragmentID
		}
		var (
			outstanding []sent // ACKs the network may still deliver
			queue       []arq.FragmentID
			nextSURB    uint64
			acked       = map[arq.FragmentID]bool{}
			sends       = map[arq.FragmentID]int{}
			ended       = map[arq.MessageID]string{}
			tracked     []arq.MessageID
		)
		send := func(f arq.FragmentID) {
			nextSURB++
			var s arq.SURBID
			for i := range 8 {
				s[i] = byte(nextSURB >> (8 * i))
			}
			_, _, err := tr.Sent(f, s, time.Duration(rng.IntN(3000))*time.Millisecond, now)
			switch {
			case err == nil:
				sends[f]++
				if sends[f] > cfg.MaxAttempts {
					t.Fatalf("seed %d: fragment sent %d times", seed, sends[f])
				}
				if acked[f] {
					t.Fatalf("seed %d: an acknowledged fragment was sent", seed)
				}
				outstanding = append(outstanding, sent{s, f})
			case errors.Is(err, arq.ErrAcknowledged), errors.Is(err, arq.ErrUnknown), errors.Is(err, arq.ErrInFlight):
				// The fragment needs no sending, or was queued twice (Due
				// lists waiting fragments again after a restart).
			default:
				t.Fatalf("seed %d: Sent: %v", seed, err)
			}
		}
		end := func(m arq.MessageID, how string) {
			if prev, ok := ended[m]; ok {
				t.Fatalf("seed %d: message %s after it was %s", seed, how, prev)
			}
			ended[m] = how
		}
		ack := func(s arq.SURBID) {
			a, ok := tr.Acked(s)
			if !ok {
				return
			}
			if acked[a.Fragment] {
				t.Fatalf("seed %d: fragment acknowledged twice", seed)
			}
			acked[a.Fragment] = true
			if a.MessageDone {
				end(a.Fragment.Message, "delivered")
			}
		}
		due := func() {
			e := tr.Due(now)
			for _, f := range e.Retransmit {
				if acked[f] {
					t.Fatalf("seed %d: an acknowledged fragment is due", seed)
				}
				queue = append(queue, f)
			}
			for _, m := range e.Failed {
				end(m, "failed")
			}
		}

		for step := range 3000 {
			switch r := rng.IntN(100); {
			case r < 5 && len(tracked) < 30:
				m := arq.MessageID{byte(seed), byte(step), byte(step >> 8)}
				n := 1 + rng.IntN(4)
				if err := tr.Track(m, n); err != nil {
					t.Fatal(err)
				}
				tracked = append(tracked, m)
				for i := range n {
					queue = append(queue, arq.FragmentID{Message: m, Index: i})
				}
			case r < 35 && len(queue) > 0: // the next λP slot
				f := queue[0]
				queue = queue[1:]
				send(f)
			case r < 55 && len(outstanding) > 0: // some ACK arrives, maybe late or again
				i := rng.IntN(len(outstanding))
				ack(outstanding[i].surb)
				if rng.IntN(2) == 0 {
					outstanding = slices.Delete(outstanding, i, i+1)
				}
			case r < 60: // forged
				ack(arq.SURBID{0xff, byte(step)})
			case r < 62: // restart: the queue is durable too
				tr = persist(t, tr, cfg)
			default:
				now = now.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
				due()
			}
		}
		// Drain: the network is gone; everything must end by the bound.
		for range 200 {
			for len(queue) > 0 {
				f := queue[0]
				queue = queue[1:]
				send(f)
			}
			now = now.Add(time.Minute)
			due()
		}
		for _, m := range tracked {
			if _, ok := ended[m]; !ok {
				t.Errorf("seed %d: a message never ended", seed)
			}
		}
		if _, ok := tr.Next(); ok {
			t.Errorf("seed %d: still tracking after the drain", seed)
		}
		total := map[string]int{}
		for _, how := range ended {
			total[how]++
		}
		resent := 0
		for _, n := range sends {
			resent += n - 1
		}
		t.Logf("seed %d: max attempts %d: %d messages: %d delivered, %d failed; %d resends", seed, cfg.MaxAttempts, len(tracked), total["delivered"], total["failed"], resent)
	}
}
