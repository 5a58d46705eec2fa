// Package chatsim runs the real chat state (chat.State on a chat.MemStore)
// under the replica simulator (replica/replicatest), so that the chat
// domain's deduplication, message ids, account references and rollback
// meet the same crashes, wiped disks, pauses, partitions and forks as the
// replication core: every simulated client is a chat user that registers,
// sends, reads and deletes messages, and now and then deletes its account
// and registers again; requests are decided against the proposing node's
// state as chat/server decides them; the final checks look every
// acknowledged request up in every replica's chat state.
//
// It holds only tests:
//
//	go test ./chat/chatsim                          the default seeds and scenarios
//	go test ./chat/chatsim -run TestChatSim/partition -chatsim.seed=N   replay one seed, with a full trace
//	go test ./chat/chatsim -chatsim.seeds=2000 -chatsim.steps=6000      a long run
package chatsim
