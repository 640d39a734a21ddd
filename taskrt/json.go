package taskrt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// NormalizeJSON returns v as a plain JSON value: map[string]any, []any,
// string, bool, nil, int64 for whole numbers that fit in 64 bits and float64
// for every other number. Operation inputs, task params and function outputs
// all go through it, so values read from YAML, from JSON, or returned by a
// function compare equal, hash alike and evaluate alike in rules. A value
// that has no JSON form (NaN, a channel, a map with non-string keys) is an
// error.
func NormalizeJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("not a JSON value: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("not a JSON value: %w", err)
	}
	return convertNumbers(out)
}

// NormalizeObject is [NormalizeJSON] for a JSON object. A nil map stays nil.
func NormalizeObject(m map[string]any) (map[string]any, error) {
	if m == nil {
		return nil, nil
	}
	v, err := NormalizeJSON(m)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		// Unreachable: a map[string]any always encodes as an object.
		return nil, fmt.Errorf("not a JSON object: %T", v)
	}
	return obj, nil
}

// convertNumbers replaces the json.Numbers of a freshly decoded value, in
// place.
func convertNumbers(v any) (any, error) {
	switch v := v.(type) {
	case json.Number:
		return jsonNumber(string(v))
	case map[string]any:
		for k, e := range v {
			c, err := convertNumbers(e)
			if err != nil {
				return nil, err
			}
			v[k] = c
		}
	case []any:
		for i, e := range v {
			c, err := convertNumbers(e)
			if err != nil {
				return nil, err
			}
			v[i] = c
		}
	}
	return v, nil
}

// jsonNumber converts the text of a number. A whole value that fits in an
// int64 becomes an int64 even when written as 1e3 or 2.0: encoding/json
// prints such a float64 without fraction, so any other choice would change
// the value's type on the next round trip.
func jsonNumber(text string) (any, error) {
	if i, err := strconv.ParseInt(text, 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return nil, fmt.Errorf("number %s is out of range", text)
		}
		return nil, fmt.Errorf("invalid number %q", text)
	}
	if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
		return int64(f), nil
	}
	return f, nil
}

// MarshalText formats d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Go duration string such as "30s" or "200ms".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalJSON writes d as a JSON string such as "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a JSON string such as "30s"; null leaves d as it is.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\", got %s", b)
	}
	return d.UnmarshalText([]byte(s))
}

// parseDuration parses s with time.ParseDuration, with an error that shows
// the expected form rather than Go's internal wording.
func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: write a number and a unit, such as \"30s\", \"200ms\" or \"1m30s\"", s)
	}
	return Duration(v), nil
}
