// Package epoch does the calendar arithmetic of the network: which epoch it
// is, when each epoch starts and ends, and the deadlines of the voting
// timetable inside it.
//
// Time is divided into epochs of a fixed Period counted from a Genesis
// instant: epoch e is the half-open interval [Genesis + e·Period,
// Genesis + (e+1)·Period). Both numbers are network parameters (20 minutes by
// default, seconds in tests), so every node computes the same epoch from its
// own clock, give or take its clock's skew. Times before Genesis belong to
// epoch 0.
//
// During epoch e the authorities agree on the document for epoch e+1. The
// timetable is a fixed fraction of the period, so it scales from 20-minute
// epochs down to one-second test epochs:
//
//	phase    from    until   what happens
//	Upload   0       2/8     nodes upload descriptors for e+1
//	Vote     2/8     3/8     authorities exchange signed votes (with commits)
//	Reveal   3/8     4/8     authorities exchange reveals; consensus computed
//	Sign     4/8     5/8     authorities exchange signatures over the document
//	Publish  5/8     1       the document for e+1 is served
//
// Deadline(e, p) is the end of phase p in epoch e. With 20-minute epochs the
// document for e+1 is final 7.5 minutes before e+1 begins, leaving nodes and
// clients time to fetch it even with clocks several seconds apart; a phase
// lasts 2.5 minutes, far above any tolerated skew. Window gives the epochs a
// moment may belong to under a given skew, for deciding which epoch's keys or
// uploads to accept near a boundary.
//
// A Schedule reads the time only through the clock it is given (time.Now if
// nil), so tests drive it with testing/synctest or a fake clock. All other
// methods are pure functions of their arguments.
package epoch
