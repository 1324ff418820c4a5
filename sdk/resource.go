package sdk

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
)

// resource is a Graph entity as its top-level JSON properties. Graph's
// notifications are mostly partial (see the notification examples of
// https://learn.microsoft.com/graph/api/application-post-calls): a property
// that is missing, or null, says nothing about the current value, so
// merging keeps what is known and replaces only what the update carries.
// Nested objects (resultInfo, toneInfo, mediaState, source) are replaced
// whole: Graph always sends them complete.
type resource map[string]json.RawMessage

var jsonNull = []byte("null")

// parseResource reads a JSON object; nil for anything else.
func parseResource(data []byte) resource {
	data = bytes.TrimSpace(data)
	var r resource
	if len(data) == 0 || data[0] != '{' || json.Unmarshal(data, &r) != nil {
		return nil
	}
	return r
}

// merge copies upd's non-null properties into r.
func (r resource) merge(upd resource) {
	for k, v := range upd {
		if len(v) == 0 || bytes.Equal(bytes.TrimSpace(v), jsonNull) {
			continue
		}
		r[k] = v
	}
}

// mergeEntity merges upd, the entity as a new payload shows it, into r:
// as merge, except that an instance annotation ("@namespace.term", not
// OData's own "@odata.…") describes the payload it comes with, so one
// that upd does not carry no longer holds (Switchboard marks the dominant
// speaker with "@switchboard.dominantSpeaker": true and omits it when
// false).
func (r resource) mergeEntity(upd resource) {
	for k := range r {
		if _, ok := upd[k]; !ok && strings.HasPrefix(k, "@") && !strings.HasPrefix(k, "@odata.") {
			delete(r, k)
		}
	}
	r.merge(upd)
}

// fill copies base's non-null properties that r does not have: base is
// older (a create-call response) than what r already knows.
func (r resource) fill(base resource) {
	for k, v := range base {
		if _, ok := r[k]; ok || bytes.Equal(bytes.TrimSpace(v), jsonNull) {
			continue
		}
		r[k] = v
	}
}

// str returns a string property, "" when absent or not a string.
func (r resource) str(key string) string {
	var s string
	if v, ok := r[key]; ok {
		_ = json.Unmarshal(v, &s)
	}
	return s
}

func (r resource) set(key string, v any) {
	b, _ := json.Marshal(v)
	r[key] = b
}

func (r resource) clone() resource { return maps.Clone(r) }

// decodeInto decodes r into v tolerantly: a property v cannot hold (a
// number where Graph documents a string, an object in place of an enum) is
// dropped rather than failing the whole entity. It returns the names of the
// properties dropped, and deletes them from r so they are not retried on
// every later merge.
func decodeInto[T any](r resource, v *T) []string {
	data, _ := json.Marshal(r)
	if json.Unmarshal(data, v) == nil {
		return nil
	}
	var dropped []string
	for _, k := range slices.Sorted(maps.Keys(r)) {
		one, _ := json.Marshal(resource{k: r[k]})
		var probe T
		if json.Unmarshal(one, &probe) != nil {
			dropped = append(dropped, k)
			delete(r, k)
		}
	}
	var zero T
	*v = zero
	data, _ = json.Marshal(r)
	_ = json.Unmarshal(data, v)
	return dropped
}

// idKey is the form in which ids are compared: Graph shows the same id
// lower-case with dashes in responses and upper-case without them in
// notifications (e.g. the examples of
// https://learn.microsoft.com/graph/api/call-record).
func idKey(id string) string {
	return strings.ToLower(strings.ReplaceAll(id, "-", ""))
}

// resourcePath is what a notification's resourceUrl names.
type resourcePath struct {
	callID      string
	kind        string // "call", "participants", "participant", "operation" or another collection's name
	operationID string // kind operation
	partID      string // kind participant
}

// parseResourcePath reads /communications/calls/{id}[/operations/{op} |
// /participants[/{pid}] | /{collection}], also without the leading slash
// (as https://learn.microsoft.com/graph/api/participant-startholdmusic shows
// it), under the legacy /app/calls, or as a full URL.
func parseResourcePath(s string) (resourcePath, bool) {
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
		if j := strings.IndexByte(s, '/'); j >= 0 {
			s = s[j:]
		} else {
			return resourcePath{}, false
		}
	}
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	segs := strings.Split(strings.Trim(s, "/"), "/")
	at := -1
	for i, seg := range segs {
		if strings.EqualFold(seg, "calls") && i > 0 && (strings.EqualFold(segs[i-1], "communications") || strings.EqualFold(segs[i-1], "app")) {
			at = i
			break
		}
	}
	if at < 0 || at+1 >= len(segs) || segs[at+1] == "" {
		return resourcePath{}, false
	}
	p := resourcePath{callID: segs[at+1], kind: "call"}
	rest := segs[at+2:]
	if len(rest) == 0 {
		return p, true
	}
	switch strings.ToLower(rest[0]) {
	case "operations":
		if len(rest) < 2 || rest[1] == "" {
			return resourcePath{}, false
		}
		p.kind, p.operationID = "operation", rest[1]
	case "participants":
		p.kind = "participants"
		if len(rest) >= 2 && rest[1] != "" {
			p.kind, p.partID = "participant", rest[1]
		}
	default:
		p.kind = strings.ToLower(rest[0])
	}
	return p, true
}
