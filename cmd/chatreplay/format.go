package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

// redacted stands for a password hash: replay output is for reading and
// sharing, and a hash invites offline guessing.
const redacted = "<redacted>"

// field is one key and value of an output line. Lines are slices of fields,
// never maps, so that their order is fixed.
type field struct {
	key string
	val any
}

// eventFields returns the fields of a decoded event (nil for a record that
// is not a chat event), with the names of its user ids and what applying it
// did.
func eventFields(ev chat.Event, res outcome, names map[uint64]string) []field {
	var fs []field
	user := func(key string, uid uint64) {
		if name, ok := names[uid]; ok {
			fs = append(fs, field{key, name})
		}
	}
	switch ev := ev.(type) {
	case *chat.RegisterEvent:
		fs = append(fs, field{"name", ev.Name})
		if res.uid != 0 {
			fs = append(fs, field{"uid", res.uid})
		}
		fs = append(fs, field{"password_hash", redacted})
	case *chat.SendEvent:
		fs = append(fs, field{"id", ev.MessageID})
		if res.storedID != 0 {
			fs = append(fs, field{"stored_id", res.storedID})
		}
		fs = append(fs, field{"from_uid", ev.FromUID})
		user("from", ev.FromUID)
		fs = append(fs, field{"to_uid", ev.ToUID})
		user("to", ev.ToUID)
		fs = append(fs, field{"body", ev.Body})
	case *chat.DeliverEvent:
		fs = append(fs, field{"uid", ev.UID})
		user("user", ev.UID)
		fs = append(fs, field{"ids", idList(ev.MessageIDs)})
	case *chat.DeleteMessagesEvent:
		fs = append(fs, field{"uid", ev.UID})
		user("user", ev.UID)
		fs = append(fs, field{"ids", idList(ev.IDs)})
	case *chat.DeleteAccountEvent:
		fs = append(fs, field{"uid", ev.UID})
		user("user", ev.UID)
	}
	if res.result != "" {
		fs = append(fs, field{"result", res.result})
		if res.result != "ok" && res.errMsg != "" {
			fs = append(fs, field{"error", res.errMsg})
		}
	}
	if res.dedup != "" {
		fs = append(fs, field{"dedup", res.dedup})
	}
	return fs
}

// origin locates the truncated copy of a re-submitted record.
type origin struct {
	Epoch  eventlog.Epoch  `json:"epoch"`
	Offset eventlog.Offset `json:"offset"`
}

// idList makes a nil list print as [] rather than null.
func idList(ids []uint64) []uint64 {
	if ids == nil {
		return []uint64{}
	}
	return ids
}

// genericFields decodes the payload of a record that is not a chat event
// as generic msgpack, under "data" (or "data_base64" if it is not msgpack).
func genericFields(data []byte) []field {
	if len(data) == 0 {
		return nil
	}
	r := bytes.NewReader(data)
	dec := msgpack.NewDecoder(r)
	dec.SetMapDecoder(decodeStringMap)
	v, err := dec.DecodeInterface()
	// Trailing bytes after one value mean it is not a msgpack payload.
	if err != nil || r.Len() > 0 {
		return []field{{"data_base64", base64.StdEncoding.EncodeToString(data)}}
	}
	return []field{{"data", v}}
}

// decodeStringMap decodes every msgpack map as a map[string]any, which
// encoding/json prints with sorted keys (so the output is deterministic).
// A key that is not a string is printed as its JSON text.
func decodeStringMap(d *msgpack.Decoder) (any, error) {
	n, err := d.DecodeMapLen()
	if err != nil || n < 0 {
		return nil, err
	}
	m := make(map[string]any, min(n, 64))
	for range n {
		k, err := d.DecodeInterface()
		if err != nil {
			return nil, err
		}
		v, err := d.DecodeInterface()
		if err != nil {
			return nil, err
		}
		key, ok := k.(string)
		if !ok {
			b, err := jsonValue(k)
			if err != nil {
				return nil, err
			}
			key = string(b)
		}
		m[key] = v
	}
	return m, nil
}

// printer writes lines in the human or the JSON format.
type printer struct {
	w    io.Writer
	json bool
}

// recordTime formats a record's time the same way on every machine.
func recordTime(nanos int64) string { return time.Unix(0, nanos).UTC().Format(time.RFC3339Nano) }

// eventTime is a record's time for its line: nil (JSON null, "-" in text)
// for the records that carry none, the replica layer's own (Time 0, which
// would print as 1970-01-01).
func eventTime(rec eventlog.Record) any {
	if rec.Time == 0 {
		return nil
	}
	return recordTime(rec.Time)
}

// event prints one record with its event fields (generic ones when fields
// is empty and the record is not a chat event).
func (p *printer) event(rec eventlog.Record, fields []field) error {
	if !strings.HasPrefix(rec.Type, chat.TypePrefix) {
		fields = genericFields(rec.Data)
	}
	var req []field
	if rec.ClientID != "" {
		req = append(req, field{"client", rec.ClientID})
	}
	if rec.Seq != 0 {
		req = append(req, field{"seq", rec.Seq})
	}
	if rec.Resubmitted() {
		req = append(req, field{"resubmitted", origin{rec.OrigEpoch, rec.OrigOffset}})
	}
	if p.json {
		head := []field{{"offset", rec.Offset}, {"epoch", rec.Epoch}, {"type", rec.Type}, {"time", eventTime(rec)}}
		return p.jsonLine(slices.Concat(head, req, fields))
	}
	var b strings.Builder
	when := "-"
	if t := eventTime(rec); t != nil {
		when = t.(string)
	}
	fmt.Fprintf(&b, "%d  %d  %s  %s", rec.Offset, rec.Epoch, when, rec.Type)
	if len(fields) == 1 && fields[0].key == "data" {
		// A generic payload: its top-level keys become fields.
		if m, ok := fields[0].val.(map[string]any); ok {
			fields = mapFields(m)
		}
	}
	for _, f := range slices.Concat(fields, req) {
		b.WriteString("  ")
		b.WriteString(f.key)
		b.WriteByte('=')
		b.WriteString(humanValue(f.val))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(p.w, b.String())
	return err
}

// mapFields returns m's entries as fields in key order.
func mapFields(m map[string]any) []field {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fs := make([]field, len(keys))
	for i, k := range keys {
		fs[i] = field{k, m[k]}
	}
	return fs
}

// jsonLine prints fields as one JSON object, in their order.
func (p *printer) jsonLine(fields []field) error {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := jsonValue(f.key)
		if err != nil {
			return err
		}
		v, err := jsonValue(f.val)
		if err != nil {
			return fmt.Errorf("encode %s: %w", f.key, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteString("}\n")
	_, err := p.w.Write(b.Bytes())
	return err
}

// jsonValue encodes v without HTML escaping (bodies print as typed).
func jsonValue(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// humanValue formats a value for the human format: strings bare when that
// is unambiguous, else quoted; numbers in decimal; anything else as JSON.
func humanValue(v any) string {
	switch v := v.(type) {
	case string:
		if plain(v) {
			return v
		}
		return strconv.Quote(v)
	case uint64:
		return strconv.FormatUint(v, 10)
	case eventlog.Offset, eventlog.Epoch:
		return fmt.Sprint(v)
	}
	b, err := jsonValue(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}

// plain reports whether s reads unambiguously without quotes in a
// key=value line.
func plain(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) || r == '"' || r == '=' || r == '\\' {
			return false
		}
	}
	return true
}
