package eventlog

import (
	"fmt"
	"slices"
	"time"
)

// Write implements BatchWriter.
//
// It first checks the whole batch against the log, step by step with the
// single-step methods' own checks (including reading the record a
// truncation ends at), so that an invalid batch returns the error those
// steps would and writes nothing. Then it makes every change of the batch,
// in the batch's order, through one sequence of transactions:
//
//  1. the Meta values;
//  2. for a truncation that removes records (TruncateAfter < Last()):
//     m/pending and the truncated epoch history, the moves of the records
//     to the rollback area, and the deletion of m/pending (as Truncate);
//  3. the MetaAfterTruncate values;
//  4. the records, in offset order;
//  5. the epoch history with the new entries (one key);
//  6. m/rbfirst, then the deletion of the discarded rollback records (as
//     DiscardRolledBack).
//
// # Synced transactions
//
// One, whatever the steps (a truncation included), when the changes fit one
// Badger transaction (15% of MemTableSize; a moved record counts twice, its
// rollback copy and the deletion, and a record above 1 MiB counts little,
// its value going to the value log): the epoch change of a replica (hard
// state, ISR index, the ISR record, the epoch entry) is one fsync, where the
// steps one by one are four. A key written twice in it (m/pending set and
// deleted, the epoch history, a record key moved out and appended again, a
// rollback record moved in and discarded) is written once, with its last
// value.
//
// Otherwise, as Append, Truncate and DiscardRolledBack do, a transaction is
// committed (and synced) whenever the next change does not fit in it, and
// the next one starts: ceil(size / limit) transactions, give or take one.
// Every prefix of the changes above that a crash can leave is then the state
// after a prefix of the steps (with a prefix of the records for step 4),
// which is a valid log:
//   - the meta values lead;
//   - the truncation's commit point is its m/pending, committed after the
//     meta values and before anything that follows it; the next read-write
//     open finishes an interrupted move (see Atomicity on BadgerLog);
//   - a prefix of the records is a shorter Append;
//   - the epoch history follows the last record, so it is durable only
//     with every record: AddEpoch lets a start be Last()+1 of the log once
//     the records are appended, which is beyond what a prefix of them
//     allows (an entry committed with the first records could name a start
//     two records past the durable end);
//   - m/rbfirst, the discard's commit point, comes last; the deletions
//     after it are finished by the next open.
//
// After a storage error, the in-memory state (Last, LastEpoch, Epochs, the
// rollback area) describes what was committed, as the single-step methods'
// does. BadgerOptions.ObserveSync is called once per committed transaction
// that holds records, once that state is updated, with the writer lock
// held but not the readers' (as Append does).
func (l *BadgerLog) Write(b Batch) error {
	if b.Empty() {
		return nil
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	s := batchState{first: l.first, last: l.last, lastEpoch: l.lastEpoch, baseEpoch: l.baseEpoch,
		epochs: l.epochs, rolled: l.rbNext - l.rbFirst}
	p, err := checkBatch(&b, s, l.unwritable(), func(off Offset) (Epoch, error) {
		r, err := l.get(off)
		return r.Epoch, err
	})
	if err != nil {
		return fmt.Errorf("write batch: %w", err)
	}

	// As Truncate and DiscardRolledBack do, hold mu exclusively while
	// committing a batch that removes records from the log or the rollback
	// area, so that no reader pairs old bounds with the new database.
	removes := p.truncate || b.DiscardRolledBack > 0
	if removes {
		l.mu.Lock()
	}
	c := newChunker(l.db)
	defer c.discard()
	// ObserveSync is called once mu is released, as Append calls it (with
	// only wmu held), in case it reads the log.
	var observed []time.Duration
	if l.observeSync != nil {
		c.observe = func(d time.Duration) { observed = append(observed, d) }
	}
	pend := pending{After: b.TruncateAfter, Rollback: true, Seq: l.rbNext}
	newRBFirst := l.rbFirst + uint64(b.DiscardRolledBack)
	// at* is the number of changes made before each step's commit point:
	// the step is durable once more changes than that are committed.
	atTruncate, atRecords, atEpochs, atDiscard := -1, -1, -1, -1
	var (
		sweepTo Offset
		sweepAt = -1
	)
	err = func() error {
		setMeta := func(ms []MetaValue) error {
			for _, m := range ms {
				v := slices.Clone(m.Value)
				if v == nil {
					v = []byte{}
				}
				if err := c.set([]byte(prefixMeta+m.Name), v); err != nil {
					return fmt.Errorf("set meta %q: %w", m.Name, err)
				}
			}
			return nil
		}
		if err := setMeta(b.Meta); err != nil {
			return err
		}
		if p.truncate {
			atTruncate = c.changes()
			err := c.set([]byte(keyPending), mustMarshal(pend))
			if err == nil {
				err = c.set([]byte(keyEpochs), mustMarshal(p.truncEpochs))
			}
			if err == nil {
				err = l.movePending(c, pend)
			}
			if err != nil {
				return fmt.Errorf("truncate after %d: %w", b.TruncateAfter, err)
			}
		}
		if err := setMeta(b.MetaAfterTruncate); err != nil {
			return err
		}
		atRecords = c.changes()
		for i, r := range b.Records {
			if err := c.setRecord(recordKey(r.Offset), p.encoded[i]); err != nil {
				return fmt.Errorf("append offset %d: %w", r.Offset, err)
			}
		}
		if len(b.Epochs) > 0 {
			atEpochs = c.changes()
			if err := c.set([]byte(keyEpochs), mustMarshal(p.epochs)); err != nil {
				return fmt.Errorf("add epochs: %w", err)
			}
		}
		if n := b.DiscardRolledBack; n > 0 {
			atDiscard = c.changes()
			err := c.set([]byte(keyRBFirst), mustMarshal(newRBFirst))
			for seq := l.rbFirst; err == nil && seq < newRBFirst; seq++ {
				err = c.del(rollbackKey(seq))
			}
			if err != nil {
				return fmt.Errorf("discard %d rolled back: %w", n, err)
			}
		}
		// Last: a few compacted record keys (see sweepSome). After a
		// truncation below the base they are none (first-1 bounds them).
		var err error
		if sweepTo, sweepAt, err = l.sweepSome(c, sweepPerWrite); err != nil {
			return err
		}
		return c.commit()
	}()
	l.sweptTo(c, sweepAt, sweepTo)

	done := func(at int) bool { return at >= 0 && c.committed > at }
	if !removes {
		l.mu.Lock()
	}
	if done(atTruncate) {
		l.tail.reset()
		l.last, l.lastEpoch, l.epochs = b.TruncateAfter, p.truncEpoch, p.truncEpochs
		l.rbNext = pend.Seq + p.moved
	}
	if n := min(max(c.committed-atRecords, 0), len(b.Records)); atRecords >= 0 && n > 0 {
		l.last, l.lastEpoch = b.Records[n-1].Offset, b.Records[n-1].Epoch
		// Badger is done with the values once committed, and nobody
		// modifies them: the cache may keep them.
		for i, v := range p.encoded[:n] {
			l.tail.add(b.Records[i].Offset, v)
		}
		l.notify()
	}
	if done(atEpochs) {
		l.epochs = p.epochs
	}
	if done(atDiscard) {
		l.rbFirst = newRBFirst
	}
	l.mu.Unlock()
	for _, d := range observed {
		l.observeSync(d)
	}
	if err != nil {
		return fmt.Errorf("write batch: %w", err)
	}
	return nil
}
