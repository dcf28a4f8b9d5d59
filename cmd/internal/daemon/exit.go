package daemon

// Process exit codes shared by every daemon (DESIGN §2).
const (
	// ExitOK: a clean stop, or -validate / -version succeeded.
	ExitOK = 0
	// ExitFailure: the daemon failed while running, or did not drain in time.
	ExitFailure = 1
	// ExitUsage: bad flags or a bad config.
	ExitUsage = 2
)
