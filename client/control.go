package client

import (
	"time"

	"github.com/chorus-mixnet/chorus/mix/link"
)

// control fills the egress's constant-rate control slots (it implements
// egress.Control). Its order: acknowledge the entry just handled (so the
// provider can delete it), ask for a missing document, else retrieve the
// next entry. At most one retrieval is outstanding; while it is, a slot
// carries a NoOp, unless the answer is overdue.
type control Client

// retrieveOverdue is how many retrieval intervals an unanswered retrieval
// blocks the next one.
const retrieveOverdue = 4

func (ct *control) NextControl() link.Command {
	c := (*Client)(ct)
	now := time.Now()
	c.refreshParameters(now)
	c.pruneTokens(now)

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pendingAck != nil {
		seq := *c.pendingAck
		c.pendingAck = nil
		c.lastSeq = seq
		return link.MessageAck{Seq: seq}
	}
	if e, ok := c.consensusWantedLocked(now); ok {
		return link.GetConsensus{Epoch: e}
	}
	interval := c.cfg.RetrievalInterval
	if c.paramsDoc != nil {
		interval = c.paramsDoc.Parameters.RetrievalInterval
	}
	if c.retrieving && now.Sub(c.retrieveAt) < retrieveOverdue*interval {
		return link.NoOp{}
	}
	c.retrieving, c.retrieveAt = true, now
	return link.RetrieveMessage{Seq: c.lastSeq}
}
