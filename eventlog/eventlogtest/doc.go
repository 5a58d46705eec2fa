// Package eventlogtest is the conformance suite that every eventlog.Log
// implementation must pass: [Run] checks the contract of eventlog.Log on
// fresh logs, and [RunDurable] checks that a durable implementation keeps
// everything across Close and reopen. For a log that implements
// eventlog.BatchWriter, both also check Write: against the same [Steps]
// done one by one on a second log (the same result, the same errors, and
// nothing written by an invalid batch), and across reopens.
//
// One suite for all implementations is what lets the deterministic simulator
// trust MemoryLog to behave like the BadgerLog a real replica uses.
//
// # Usage
//
//	func TestBadgerLog_Conformance(t *testing.T) {
//		eventlogtest.Run(t, func(t *testing.T) eventlog.Log {
//			l, err := eventlog.OpenBadger(t.TempDir(), eventlog.BadgerOptions{})
//			require.NoError(t, err)
//			t.Cleanup(func() { l.Close() })
//			return l
//		})
//	}
//
// The suite only uses the Log interface, never implementation details, and
// binds nothing to the network.
package eventlogtest
