package chatdb

import "errors"

// ErrLocked is returned (wrapped) by Open when another process holds the
// directory: a replica is running on it.
var ErrLocked = errors.New("chatdb: directory locked by another process")

// ErrClosed is returned by Sync after Close.
var ErrClosed = errors.New("chatdb: closed")
