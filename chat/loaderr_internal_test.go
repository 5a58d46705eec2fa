package chat

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestState_LoadErrReportsAnInterruptedRestore(t *testing.T) {
	store := NewMemStore()
	require.NoError(t, store.Update(func(kv KV) error { return kv.Set(keyRestoring, nil) }))
	s := NewState(store)
	require.ErrorIs(t, s.LoadErr(), ErrIncompleteRestore)
	var empty bytes.Buffer
	require.NoError(t, snapErr(NewState(NewMemStore()).WriteSnapshot(&empty)))
	require.NoError(t, s.RestoreSnapshot(&empty))
	require.NoError(t, s.LoadErr(), "a completed restore repairs the state")
	require.NoError(t, NewState(NewMemStore()).LoadErr())
}
