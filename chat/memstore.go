package chat

import (
	"bytes"
	"hash/fnv"
	"math/bits"
	"slices"
	"sync"
)

// MemStore is an in-memory Store for tests and the deterministic simulator.
// It keeps keys in a skip list, so scans are ordered and every operation is
// O(log n). It is safe for concurrent use: Updates are serialized and
// exclude Views.
type MemStore struct {
	mu sync.RWMutex
	// nodes indexes the skip list by key: exactly the keys in the list.
	nodes map[string]*skipNode
	head  skipNode // sentinel; head.next has maxLevel entries
}

// maxLevel bounds the skip list's height: 4^maxLevel keys is plenty.
const maxLevel = 20

type skipNode struct {
	key  string
	val  []byte
	next []*skipNode
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{nodes: make(map[string]*skipNode), head: skipNode{next: make([]*skipNode, maxLevel)}}
}

// View runs fn on a read-only view. Writes through it are refused.
func (m *MemStore) View(fn func(KV) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return fn(&memTxn{m: m, readOnly: true})
}

// Update runs fn and undoes all of its writes if it returns an error.
func (m *MemStore) Update(fn func(KV) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	tx := &memTxn{m: m}
	if err := fn(tx); err != nil {
		tx.rollback()
		return err
	}
	return nil
}

// undo restores one key to what it was before a write.
type undo struct {
	key   string
	val   []byte
	found bool
}

type memTxn struct {
	m        *MemStore
	readOnly bool
	undos    []undo
}

func (t *memTxn) Get(key []byte) ([]byte, bool, error) {
	n, ok := t.m.nodes[string(key)]
	if !ok {
		return nil, false, nil
	}
	return n.val, true, nil
}

func (t *memTxn) Set(key, value []byte) error {
	if t.readOnly {
		return errReadOnly
	}
	k := string(key)
	u := undo{key: k}
	if n, ok := t.m.nodes[k]; ok {
		u.val, u.found = n.val, true
	}
	t.undos = append(t.undos, u)
	t.m.put(k, bytes.Clone(value))
	return nil
}

func (t *memTxn) Delete(key []byte) error {
	if t.readOnly {
		return errReadOnly
	}
	n, ok := t.m.nodes[string(key)]
	if !ok {
		return nil
	}
	t.undos = append(t.undos, undo{key: n.key, val: n.val, found: true})
	t.m.del(n.key)
	return nil
}

func (t *memTxn) Scan(prefix, start []byte, fn func(key, value []byte) (bool, error)) error {
	from := string(prefix)
	if string(start) > from {
		from = string(start)
	}
	n := t.m.seek(from, nil)
	for n != nil && len(n.key) >= len(prefix) && n.key[:len(prefix)] == string(prefix) {
		key := n.key
		more, err := fn([]byte(key), n.val)
		if err != nil || !more {
			return err
		}
		// fn may have written: re-seek past key rather than trust n.next.
		if cur, ok := t.m.nodes[key]; ok {
			n = cur.next[0]
		} else {
			n = t.m.seek(key, nil)
		}
	}
	return nil
}

func (t *memTxn) rollback() {
	for _, u := range slices.Backward(t.undos) {
		if u.found {
			t.m.put(u.key, u.val)
		} else {
			t.m.del(u.key)
		}
	}
}

// level derives a node's height from its key (p = 1/4 per level), so the
// structure, like everything here, is deterministic.
func level(key string) int {
	h := fnv.New64a()
	h.Write([]byte(key))
	return min(1+bits.TrailingZeros64(h.Sum64()|1<<63)/2, maxLevel)
}

// seek returns the first node with key >= key, filling prev (if not nil)
// with the last node before it at every level.
func (m *MemStore) seek(key string, prev []*skipNode) *skipNode {
	x := &m.head
	for lv := maxLevel - 1; lv >= 0; lv-- {
		for x.next[lv] != nil && x.next[lv].key < key {
			x = x.next[lv]
		}
		if prev != nil {
			prev[lv] = x
		}
	}
	return x.next[0]
}

func (m *MemStore) put(k string, v []byte) {
	if n, ok := m.nodes[k]; ok {
		n.val = v
		return
	}
	var prev [maxLevel]*skipNode
	m.seek(k, prev[:])
	n := &skipNode{key: k, val: v, next: make([]*skipNode, level(k))}
	for lv := range n.next {
		n.next[lv] = prev[lv].next[lv]
		prev[lv].next[lv] = n
	}
	m.nodes[k] = n
}

func (m *MemStore) del(k string) {
	n, ok := m.nodes[k]
	if !ok {
		return
	}
	var prev [maxLevel]*skipNode
	m.seek(k, prev[:])
	for lv := range n.next {
		prev[lv].next[lv] = n.next[lv]
	}
	delete(m.nodes, k)
}
