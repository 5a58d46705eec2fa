// Package chatdb is the Badger-backed chat.Store. The chat state shares the
// replica's Badger database with the event log, which owns the "l/" and "m/"
// key prefixes; every key of the chat state is stored under "c/".
package chatdb
