package ledger

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// appendAttrs appends the canonical JSON of an attribute map, encoding the
// types that attributes hold (strings, numbers, booleans, nil, nested maps
// and slices) directly in canonical form: no reflection and no second parse.
// Other values go through encoding/json and AppendCanonical.
func appendAttrs(out []byte, m map[string]any, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxDepth)
	}
	var stack [16]string
	keys := stack[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareUTF16[string])
	out = append(out, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		if out, err = appendString(out, k); err != nil {
			return nil, err
		}
		out = append(out, ':')
		if out, err = appendValue(out, m[k], depth+1); err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
	}
	return append(out, '}'), nil
}

func appendInt(out []byte, v int64) ([]byte, error) {
	if v > maxSafeInteger || v < -maxSafeInteger {
		return nil, fmt.Errorf("integer %d is not exactly representable; send it as a string", v)
	}
	return strconv.AppendInt(out, v, 10), nil
}

func appendValue(out []byte, v any, depth int) ([]byte, error) {
	switch t := v.(type) {
	case nil:
		return append(out, "null"...), nil
	case string:
		return appendString(out, t)
	case bool:
		if t {
			return append(out, "true"...), nil
		}
		return append(out, "false"...), nil
	case int:
		return appendInt(out, int64(t))
	case int64:
		return appendInt(out, t)
	case int32:
		return appendInt(out, int64(t))
	case uint32:
		return appendInt(out, int64(t))
	case uint64:
		if t > maxSafeInteger {
			return nil, fmt.Errorf("integer %d is not exactly representable; send it as a string", t)
		}
		return strconv.AppendUint(out, t, 10), nil
	case float64:
		if math.IsInf(t, 0) || math.IsNaN(t) {
			return nil, fmt.Errorf("number %v is not valid JSON", t)
		}
		return append(out, FormatNumber(t)...), nil
	case json.Number:
		return AppendCanonical(out, []byte(t))
	case json.RawMessage:
		return AppendCanonical(out, t)
	case map[string]any:
		return appendAttrs(out, t, depth)
	case []any:
		out = append(out, '[')
		var err error
		for i, e := range t {
			if i > 0 {
				out = append(out, ',')
			}
			if out, err = appendValue(out, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(out, ']'), nil
	case []string:
		out = append(out, '[')
		var err error
		for i, e := range t {
			if i > 0 {
				out = append(out, ',')
			}
			if out, err = appendString(out, e); err != nil {
				return nil, err
			}
		}
		return append(out, ']'), nil
	}
	if err := checkJSONStrings(v, depth); err != nil {
		return nil, err
	}
	raw, err := marshalNoEscape(v)
	if err != nil {
		return nil, err
	}
	return AppendCanonical(out, raw)
}
