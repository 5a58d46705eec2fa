// Tests of State.HistoryLast, the history paged from its end: every page
// agrees with History read from the beginning, for every store.
package chat_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/eventlog"
)

func TestState_HistoryLast(t *testing.T) {
	stores := map[string]func(t *testing.T) chat.Store{
		"memory": func(*testing.T) chat.Store { return chat.NewMemStore() },
		"badger": func(t *testing.T) chat.Store {
			db, err := chatdb.Open(t.TempDir(), chatdb.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = db.Close() })
			return db.Store()
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, open(t))
			ann, bob := h.register("ann"), h.register("bob")
			h.register("cy")
			var all []uint64
			for i := range 23 {
				to, from := "bob", ann
				switch i % 3 {
				case 1:
					to, from = "ann", bob
				case 2:
					to = "cy"
				}
				all = append(all, h.send(from, to, fmt.Sprint("m", i)))
			}
			_, err := h.exec("c", 1000, chat.DeleteMessages{UID: ann, IDs: []uint64{all[0], all[22]}})
			require.NoError(t, err)

			for _, with := range []string{"", "bob", "cy"} {
				want := allHistory(t, h.st, ann, with)
				for _, limit := range []int{1, 2, 5, 100} {
					// Page back from the end; the pages, put together, are
					// the whole history.
					var got []uint64
					var before eventlog.Offset
					for pages := 0; ; pages++ {
						require.Less(t, pages, 100, "paging ends")
						page, prev, err := h.st.HistoryLast(ann, with, before, limit)
						require.NoError(t, err)
						assert.LessOrEqual(t, len(page), limit)
						got = append(ids(page), got...)
						if prev == 0 {
							break
						}
						assert.Len(t, page, limit, "only the oldest page is short")
						before = prev
					}
					assert.Equal(t, want, got, "with %q, limit %d", with, limit)
				}
			}
			page, prev, err := h.st.HistoryLast(ann, "", 0, 3)
			require.NoError(t, err)
			assert.Equal(t, []uint64{all[19], all[20], all[21]}, ids(page), "the newest, oldest first; deleted ones skipped")
			assert.NotZero(t, prev)

			_, _, err = h.st.HistoryLast(ann, "zed", 0, 10)
			assert.ErrorIs(t, err, chat.ErrUnknownUser)
			_, _, err = h.st.HistoryLast(ann, "", 0, 0)
			assert.ErrorIs(t, err, chat.ErrInvalidArgument)
			page, prev, err = h.st.HistoryLast(h.register("dee"), "", 0, 10)
			require.NoError(t, err)
			assert.Empty(t, page)
			assert.Zero(t, prev)
		})
	}
}

// allHistory is uid's whole history (with with), read forward.
func allHistory(t *testing.T, st *chat.State, uid uint64, with string) []uint64 {
	var out []uint64
	var after eventlog.Offset
	for {
		page, next, err := st.History(uid, with, after, 4)
		require.NoError(t, err)
		out = append(out, ids(page)...)
		if next == 0 {
			return out
		}
		after = next
	}
}
