// Package mpack holds the msgpack primitives that the hot-path codecs share:
// functions that append one value or header, and a Reader that reads them
// back from a byte slice.
//
// The append functions write exactly the bytes github.com/vmihailenco/msgpack/v5
// writes for the same value: the full-width forms (AppendUint64, AppendInt64,
// ...) are what its reflection writes for sized integer fields by default, the
// shortest forms (AppendUint, AppendInt) what it writes for an int field or
// with UseCompactInts. Byte-identity matters because the encoded values are
// stored under checksums and compared across replicas.
//
// The codecs themselves (which fields, in which order, what an absent field
// means) stay with their types, in eventlog, replica and chat; this package
// knows nothing of them. The Reader never panics and never allocates on
// hostile input: every declared length is checked against the bytes left, and
// Skip bounds nesting.
package mpack
