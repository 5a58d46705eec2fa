package server

import (
	"context"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/wire"
	"github.com/replichat/replichat/eventlog"
)

// pusher pushes a listening user's unread messages, in log order, from the
// durable queue. It needs no record of what was acknowledged: acknowledged
// messages leave the queue, so the messages at the queue's head with an
// offset at or below the cursor are exactly those pushed and not yet acked.
type pusher struct {
	sess  *session
	uid   uint64
	wakec chan struct{} // capacity 1: a pending wake is never lost, never piles up
	stopc chan struct{}
	done  chan struct{}
}

func newPusher(sess *session, uid uint64) *pusher {
	return &pusher{
		sess:  sess,
		uid:   uid,
		wakec: make(chan struct{}, 1),
		stopc: make(chan struct{}),
		done:  make(chan struct{}),
	}
}

func (p *pusher) start(ctx context.Context) {
	p.wake() // push what is already queued
	go p.run(ctx)
}

// stop ends the pusher and waits for it.
func (p *pusher) stop() {
	close(p.stopc)
	<-p.done
}

func (p *pusher) wake() {
	select {
	case p.wakec <- struct{}{}:
	default:
	}
}

func (p *pusher) run(ctx context.Context) {
	defer close(p.done)
	srv := p.sess.srv
	window := srv.cfg.PushWindow
	// cursor is the offset of the last message pushed on this connection.
	// Invariant: every queued message with Offset <= cursor was pushed.
	var cursor eventlog.Offset
	// low is where the next scan starts. Invariant: no message below low
	// is queued, or ever will be: everything below it was pushed and then
	// left the queue, and new messages take offsets past the log's end,
	// which is past cursor. Starting there skips the deletion markers that
	// delivered messages leave at the queue's head; scanning them on every
	// wake was a third of a busy primary's CPU.
	var low eventlog.Offset
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.stopc:
			return
		case <-p.wakec:
		}
		// A batch beyond the window, so that one wake can fill the window.
		msgs, err := srv.state.UnreadFrom(p.uid, low, window+window/2)
		if err != nil {
			p.sess.log.Error("read unread queue for push", "uid", p.uid, "err", err)
			continue
		}
		// The oldest queued message pushed and not yet acked, if any, else
		// the first not pushed: nothing below it remains.
		low = cursor + 1
		if len(msgs) > 0 && msgs[0].Offset < low {
			low = msgs[0].Offset
		}
		unacked := 0
		for _, m := range msgs {
			if m.Offset <= cursor {
				unacked++
				continue
			}
			if unacked >= window {
				break // the client's acks will wake us
			}
			f, err := wire.NewPush(wire.PushMessage, wireMessage(m))
			if err != nil {
				p.sess.log.Error("encode push", "id", m.ID, "err", err)
				return
			}
			if !srv.write(p.sess.nc, p.sess.conn, f) {
				return // the connection is gone; the request loop will notice
			}
			cursor = m.Offset
			unacked++
		}
	}
}

// wireMessage converts a chat message to its wire form.
func wireMessage(m chat.Message) wire.Message {
	return wire.Message{ID: m.ID, From: m.From, To: m.To, Body: m.Body, SentAt: m.Time}
}
