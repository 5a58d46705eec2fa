package eventlog

// recordStore against a plain slice, with tiny chunks so that every chunk
// boundary case (full last chunk, cut inside a chunk, dropped front chunks)
// comes up, and with clones whose later writes must not leak either way.

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRecordStore_MatchesSlice(t *testing.T) {
	type pair struct {
		store recordStore
		model []Offset
	}
	rng := rand.New(rand.NewPCG(7, 7))
	next := Offset(1)
	pairs := []*pair{{store: newRecordStore(4)}}
	check := func(step int) {
		for i, p := range pairs {
			require.Equal(t, len(p.model), p.store.len(), "step %d copy %d: len", step, i)
			for j, want := range p.model {
				require.Equal(t, want, p.store.at(j).rec.Offset, "step %d copy %d: record %d", step, i, j)
			}
		}
	}
	for step := range 3000 {
		p := pairs[rng.IntN(len(pairs))]
		switch op := rng.IntN(10); {
		case op < 5:
			for range 1 + rng.IntN(6) {
				p.store.append(memRecord{rec: Record{Offset: next}})
				p.model = append(p.model, next)
				next++
			}
		case op < 7:
			keep := rng.IntN(len(p.model) + 1)
			p.store.truncate(keep)
			p.model = p.model[:keep:keep]
		case op < 8:
			d := rng.IntN(len(p.model) + 1)
			p.store.dropFront(d)
			p.model = slices.Clone(p.model[d:])
		case len(pairs) < 8:
			pairs = append(pairs, &pair{store: p.store.clone(), model: slices.Clone(p.model)})
		default:
			pairs = slices.Delete(pairs, 0, 1)
		}
		check(step)
	}
}
