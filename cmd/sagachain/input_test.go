package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseInputs(t *testing.T) {
	got, err := parseInputs([]string{
		"name=Ada Lovelace",
		`quoted="42"`,
		"count=42",
		"big=9007199254740993",
		"ratio=0.5",
		"ok=true",
		"nothing=null",
		`obj={"a": [1, "b"]}`,
		"empty=",
		"eq=a=b",
		"brace={not json",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"name":    "Ada Lovelace",
		"quoted":  "42",
		"count":   int64(42),
		"big":     int64(9007199254740993), // beyond float64's exact integers
		"ratio":   0.5,
		"ok":      true,
		"nothing": nil,
		"obj":     map[string]any{"a": []any{int64(1), "b"}},
		"empty":   "",
		"eq":      "a=b",
		"brace":   "{not json",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseInputs =\n%#v\nwant\n%#v", got, want)
	}
}

func TestParseInputsRefusesBadPairs(t *testing.T) {
	for _, tc := range []struct {
		pairs []string
		want  string
	}{
		{[]string{"traveler"}, `--input "traveler": want label=value`},
		{[]string{"=Ada"}, `--input "=Ada": want label=value`},
		{[]string{"a=1", "a=2"}, "--input a: given twice"},
	} {
		_, err := parseInputs(tc.pairs)
		if err == nil || !strings.Contains(err.Error(), tc.want) || exitCode(err) != exitUsage {
			t.Errorf("parseInputs(%q) = %v, want an input error %q", tc.pairs, err, tc.want)
		}
	}
}
