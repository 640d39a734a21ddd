package taskrt

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// maxNesting bounds how deeply mappings and lists may nest in an operation
// file. Real files nest a handful of levels; the bound exists because the
// YAML parser's time grows with the square of the nesting depth, so a small
// file of brackets could otherwise stall a node.
const maxNesting = 100

// DecodeError is a problem at a place in an operation file. Line and Column
// count from 1; they are 0 when the problem has no single place (an empty
// file).
type DecodeError struct {
	Line, Column int
	Msg          string
}

// Error returns the message, prefixed with the line and column.
func (e *DecodeError) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// Decode reads an operation file written in YAML or JSON (JSON is read as
// YAML, so both take one path and give equal Operations). It is strict: an
// unknown key, a value of the wrong kind, a malformed duration, a second
// document, or YAML that has no JSON equivalent (anchors, aliases, tags, NaN)
// is a [*DecodeError] naming the line and column. Inputs and params are
// normalised with [NormalizeJSON], and an empty list of labels, empty inputs
// or empty params are left nil, so an Operation re-encoded as JSON decodes to
// an equal one.
//
// Decode checks the shape of the file, not its meaning: use [Load], or call
// [Operation.Check] after Decode.
func Decode(data []byte) (*Operation, error) {
	if err := checkUTF8(data); err != nil {
		return nil, err
	}
	tokens := lexer.Tokenize(string(bytes.TrimPrefix(data, []byte("\ufeff"))))
	if err := checkNesting(tokens); err != nil {
		return nil, err
	}
	file, err := parser.Parse(tokens, 0)
	if err != nil {
		return nil, syntaxError(err)
	}
	var body ast.Node
	for _, doc := range file.Docs {
		if doc.Body == nil {
			continue
		}
		if body != nil {
			return nil, errorAt(doc.Body, "the file holds more than one YAML document; an operation file holds one")
		}
		body = doc.Body
	}
	if body == nil {
		return nil, &DecodeError{Msg: "the operation file is empty"}
	}
	return decodeOperation(body)
}

// checkUTF8 refuses bytes that are not UTF-8, naming the first bad one.
func checkUTF8(data []byte) error {
	if utf8.Valid(data) {
		return nil
	}
	line, col := 1, 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size <= 1 {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		data = data[size:]
	}
	return &DecodeError{Line: line, Column: col, Msg: "the operation file is not valid UTF-8"}
}

// checkNesting refuses flow collections ([...], {...}) nested deeper than
// maxNesting before the parser sees them. Block collections need two more
// bytes of indentation per level, so the file size limit bounds them.
func checkNesting(tokens token.Tokens) error {
	depth := 0
	for _, tk := range tokens {
		switch tk.Type {
		case token.SequenceStartType, token.MappingStartType:
			depth++
			if depth > maxNesting {
				return &DecodeError{Line: tk.Position.Line, Column: tk.Position.Column,
					Msg: fmt.Sprintf("values nest deeper than %d levels", maxNesting)}
			}
		case token.SequenceEndType, token.MappingEndType:
			depth--
		}
	}
	return nil
}

var yamlPosition = regexp.MustCompile(`\[(\d+):(\d+)\]`)

// syntaxError turns a parser error into a DecodeError, rewriting the parser's
// "[3:5]" positions as words.
func syntaxError(err error) error {
	var ye yaml.Error
	if !errors.As(err, &ye) {
		return &DecodeError{Msg: "invalid YAML: " + err.Error()}
	}
	msg := "invalid YAML: " + yamlPosition.ReplaceAllString(ye.GetMessage(), "line $1, column $2")
	if tk := ye.GetToken(); tk != nil && tk.Position != nil {
		return &DecodeError{Line: tk.Position.Line, Column: tk.Position.Column, Msg: msg}
	}
	return &DecodeError{Msg: msg}
}

// errorAt returns a DecodeError at node n.
func errorAt(n ast.Node, format string, args ...any) *DecodeError {
	line, col := position(n)
	return &DecodeError{Line: line, Column: col, Msg: fmt.Sprintf(format, args...)}
}

// position returns where n starts. A block mapping's own token is its first
// colon, so it is placed at its first key instead.
func position(n ast.Node) (line, col int) {
	switch m := n.(type) {
	case *ast.MappingNode:
		if !m.IsFlowStyle && len(m.Values) > 0 {
			return position(m.Values[0])
		}
	case *ast.MappingValueNode:
		return position(m.Key)
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line, tk.Position.Column
	}
	return 0, 0
}

// Keys of each mapping of the schema, in the order they are documented; an
// unknown key is checked against them for a suggestion.
var (
	operationKeys = []string{"name", "inputs", "timeout", "defaults", "tasks"}
	defaultsKeys  = []string{"timeout", "retry"}
	taskKeys      = []string{"id", "run", "rollback", "inputs", "outputs", "after", "params", "validate", "timeout", "retry"}
	retryKeys     = []string{"attempts", "backoff"}
)

func decodeOperation(n ast.Node) (*Operation, error) {
	kvs, err := mapping(n, "the operation file")
	if err != nil {
		return nil, err
	}
	op := &Operation{}
	for _, kv := range kvs {
		key, err := keyOf(kv)
		if err != nil {
			return nil, err
		}
		where := fmt.Sprintf("%q", key)
		switch key {
		case "name":
			op.Name, err = text(kv.Value, where)
		case "inputs":
			op.Inputs, err = object(kv.Value, "operation inputs")
		case "timeout":
			op.Timeout, err = duration(kv.Value, where)
		case "defaults":
			op.Defaults, err = decodeDefaults(kv.Value)
		case "tasks":
			op.Tasks, err = decodeTasks(kv.Value)
		default:
			err = unknownKey(kv, key, "the operation", operationKeys)
		}
		if err != nil {
			return nil, err
		}
	}
	return op, nil
}

func decodeDefaults(n ast.Node) (Defaults, error) {
	var d Defaults
	if isNull(n) {
		return d, nil
	}
	kvs, err := mapping(n, `"defaults"`)
	if err != nil {
		return d, err
	}
	for _, kv := range kvs {
		key, err := keyOf(kv)
		if err != nil {
			return d, err
		}
		switch key {
		case "timeout":
			d.Timeout, err = duration(kv.Value, `"timeout" of the defaults`)
		case "retry":
			d.Retry, err = decodeRetry(kv.Value, "the defaults")
		default:
			err = unknownKey(kv, key, "the defaults", defaultsKeys)
		}
		if err != nil {
			return d, err
		}
	}
	return d, nil
}

func decodeTasks(n ast.Node) ([]Task, error) {
	if isNull(n) {
		return nil, nil
	}
	if err := plain(n); err != nil {
		return nil, err
	}
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		return nil, errorAt(n, `"tasks" must be a list of tasks, got %s`, kindOf(n))
	}
	tasks := make([]Task, 0, len(seq.Values))
	for i, v := range seq.Values {
		t, err := decodeTask(v, i)
		if err != nil {
			return nil, err
		}
		tasks = append(tasks, t)
	}
	if len(tasks) == 0 {
		return nil, nil
	}
	return tasks, nil
}

func decodeTask(n ast.Node, i int) (Task, error) {
	var t Task
	kvs, err := mapping(n, fmt.Sprintf("task #%d", i+1))
	if err != nil {
		return t, err
	}
	// Name the task by its id in every message, wherever the id sits among
	// its keys.
	task := fmt.Sprintf("task #%d", i+1)
	for _, kv := range kvs {
		if k, err := keyOf(kv); err == nil && k == "id" {
			if id, err := text(kv.Value, ""); err == nil && id != "" {
				task = fmt.Sprintf("task %q", id)
			}
		}
	}
	for _, kv := range kvs {
		key, err := keyOf(kv)
		if err != nil {
			return t, err
		}
		where := fmt.Sprintf("%q of %s", key, task)
		switch key {
		case "id":
			t.ID, err = text(kv.Value, where)
		case "run":
			t.Run, err = text(kv.Value, where)
		case "rollback":
			t.Rollback, err = text(kv.Value, where)
		case "inputs":
			t.Inputs, err = labels(kv.Value, where, "labels")
		case "outputs":
			t.Outputs, err = labels(kv.Value, where, "labels")
		case "after":
			t.After, err = labels(kv.Value, where, "task ids")
		case "params":
			t.Params, err = object(kv.Value, where)
		case "validate":
			t.Validate, err = text(kv.Value, where)
		case "timeout":
			t.Timeout, err = duration(kv.Value, where)
		case "retry":
			t.Retry, err = decodeRetry(kv.Value, task)
		default:
			err = unknownKey(kv, key, task, taskKeys)
		}
		if err != nil {
			return t, err
		}
	}
	return t, nil
}

// decodeRetry reads a retry policy; owner names what it belongs to.
func decodeRetry(n ast.Node, owner string) (*Retry, error) {
	if isNull(n) {
		return nil, nil
	}
	where := `"retry" of ` + owner
	kvs, err := mapping(n, where)
	if err != nil {
		return nil, err
	}
	r := &Retry{}
	for _, kv := range kvs {
		key, err := keyOf(kv)
		if err != nil {
			return nil, err
		}
		switch key {
		case "attempts":
			r.Attempts, err = integer(kv.Value, `"attempts" in the `+where)
		case "backoff":
			r.Backoff, err = duration(kv.Value, `"backoff" in the `+where)
		default:
			err = unknownKey(kv, key, "the "+where, retryKeys)
		}
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// plain refuses the YAML features that have no JSON equivalent. Aliases in
// particular could expand a small file into a huge value.
func plain(n ast.Node) error {
	switch n.(type) {
	case *ast.AnchorNode, *ast.AliasNode:
		return errorAt(n, "YAML anchors and aliases are not supported in operation files")
	case *ast.TagNode:
		return errorAt(n, "YAML tags are not supported in operation files; quote the value to make it a string")
	case *ast.MergeKeyNode:
		return errorAt(n, "YAML merge keys (<<) are not supported in operation files")
	}
	return nil
}

// mapping returns the key/value pairs of a mapping node in file order.
func mapping(n ast.Node, what string) ([]*ast.MappingValueNode, error) {
	if err := plain(n); err != nil {
		return nil, err
	}
	switch m := n.(type) {
	case *ast.MappingNode:
		return m.Values, nil
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{m}, nil
	}
	return nil, errorAt(n, "%s must be a mapping of keys to values, got %s", what, kindOf(n))
}

// keyOf returns a mapping key as text. Keys must be scalars; JSON has no
// other kind.
func keyOf(kv *ast.MappingValueNode) (string, error) {
	k := ast.Node(kv.Key)
	if err := plain(k); err != nil {
		return "", err
	}
	s, ok := scalarText(k)
	if !ok {
		return "", errorAt(k, "a key must be a string, got %s", kindOf(k))
	}
	return s, nil
}

// unknownKey reports key as unknown in what, suggesting the nearest known
// key when it looks like a typo.
func unknownKey(kv *ast.MappingValueNode, key, what string, known []string) error {
	best, bestDist := "", math.MaxInt
	for _, k := range known {
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	// A short key may be one edit off, a longer one more ("retries").
	if limit := min(3, 1+len(key)/3); bestDist <= limit {
		return errorAt(kv.Key, "unknown key %q in %s (did you mean %q?)", key, what, best)
	}
	return errorAt(kv.Key, "unknown key %q in %s", key, what)
}

// editDistance is the Levenshtein distance between two short strings.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// scalarText returns the text of a scalar as written, unquoted and
// unescaped, so `id: 211` reads as "211" and `id: 2.10` as "2.10". Null reads
// as "", like an absent key.
func scalarText(n ast.Node) (string, bool) {
	switch s := n.(type) {
	case *ast.StringNode:
		return s.Value, true
	case *ast.LiteralNode:
		return s.Value.Value, true
	case *ast.NullNode:
		return "", true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return n.GetToken().Value, true
	}
	return "", false
}

// text reads a string field.
func text(n ast.Node, where string) (string, error) {
	if err := plain(n); err != nil {
		return "", err
	}
	s, ok := scalarText(n)
	if !ok {
		return "", errorAt(n, "%s must be a string, got %s", where, kindOf(n))
	}
	return s, nil
}

// labels reads a list of strings; an empty list reads as nil.
func labels(n ast.Node, where, what string) ([]string, error) {
	if isNull(n) {
		return nil, nil
	}
	if err := plain(n); err != nil {
		return nil, err
	}
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		return nil, errorAt(n, "%s must be a list of %s, got %s", where, what, kindOf(n))
	}
	var out []string
	for _, v := range seq.Values {
		if err := plain(v); err != nil {
			return nil, err
		}
		s, ok := scalarText(v)
		if !ok {
			return nil, errorAt(v, "%s must be a list of %s; this item is %s", where, what, kindOf(v))
		}
		out = append(out, s)
	}
	return out, nil
}

// duration reads a Go duration string such as "30s". The digit 0 alone is
// accepted, as time.ParseDuration accepts it.
func duration(n ast.Node, where string) (Duration, error) {
	if isNull(n) {
		return 0, nil
	}
	s, err := text(n, where)
	if err != nil {
		return 0, err
	}
	d, err := parseDuration(s)
	if err != nil {
		return 0, errorAt(n, "%s: %v", where, err)
	}
	return d, nil
}

// integer reads a whole number that fits in an int. A whole number written
// as 3.0 or 1e3 counts, as it does in JSON values.
func integer(n ast.Node, where string) (int, error) {
	if err := plain(n); err != nil {
		return 0, err
	}
	s, _ := scalarText(n)
	if !isNumber(n) {
		return 0, errorAt(n, "%s must be a whole number, got %s %q", where, kindOf(n), s)
	}
	v, err := jsonValue(n, where, 1)
	if err != nil {
		return 0, err
	}
	i, ok := v.(int64)
	if !ok || i < math.MinInt || i > math.MaxInt {
		return 0, errorAt(n, "%s must be a whole number that fits in 64 bits, got %s", where, s)
	}
	return int(i), nil
}

// object reads a mapping of JSON values, normalised; an empty mapping reads
// as nil.
func object(n ast.Node, where string) (map[string]any, error) {
	if isNull(n) {
		return nil, nil
	}
	if err := plain(n); err != nil {
		return nil, err
	}
	if _, ok := n.(*ast.SequenceNode); ok {
		return nil, errorAt(n, "%s must be a mapping of keys to values, got a list", where)
	}
	if _, ok := scalarText(n); ok {
		return nil, errorAt(n, "%s must be a mapping of keys to values, got %s", where, kindOf(n))
	}
	v, err := jsonValue(n, where, 1)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return nil, nil
	}
	m, err = NormalizeObject(m)
	if err != nil {
		return nil, errorAt(n, "%s: %v", where, err)
	}
	return m, nil
}

// yamlNumber is the YAML 1.2 core schema's number syntax, which JSON's is a
// part of. The parser leaves some of these as strings (1e3, integers beyond
// 64 bits); jsonValue reads them as numbers, as a JSON reader would.
var yamlNumber = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// jsonValue converts a node to a JSON value.
func jsonValue(n ast.Node, where string, depth int) (any, error) {
	if depth > maxNesting {
		return nil, errorAt(n, "%s: values nest deeper than %d levels", where, maxNesting)
	}
	if err := plain(n); err != nil {
		return nil, err
	}
	switch v := n.(type) {
	case *ast.NullNode:
		return nil, nil
	case *ast.BoolNode:
		return v.Value, nil
	case *ast.IntegerNode:
		switch i := v.GetValue().(type) {
		case int64:
			return i, nil
		case uint64:
			if i <= math.MaxInt64 {
				return int64(i), nil
			}
			return float64(i), nil
		}
		return nil, errorAt(n, "%s: cannot read the number %s", where, v.GetToken().Value)
	case *ast.FloatNode:
		return v.Value, nil
	case *ast.InfinityNode, *ast.NanNode:
		return nil, errorAt(n, "%s: %s is not a JSON number", where, v.GetToken().Value)
	case *ast.StringNode:
		if isNumber(v) {
			num, err := jsonNumber(v.Value)
			if err != nil {
				return nil, errorAt(n, "%s: %v", where, err)
			}
			return num, nil
		}
		return v.Value, nil
	case *ast.LiteralNode:
		return v.Value.Value, nil
	case *ast.SequenceNode:
		out := make([]any, 0, len(v.Values))
		for _, e := range v.Values {
			ev, err := jsonValue(e, where, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
		}
		return out, nil
	case *ast.MappingNode, *ast.MappingValueNode:
		kvs, err := mapping(n, where)
		if err != nil {
			return nil, err
		}
		out := make(map[string]any, len(kvs))
		for _, kv := range kvs {
			key, err := keyOf(kv)
			if err != nil {
				return nil, err
			}
			if _, dup := out[key]; dup {
				return nil, errorAt(kv.Key, "%s: key %q appears twice", where, key)
			}
			ev, err := jsonValue(kv.Value, where, depth+1)
			if err != nil {
				return nil, err
			}
			out[key] = ev
		}
		return out, nil
	}
	return nil, errorAt(n, "%s: unexpected %s", where, kindOf(n))
}

// isNumber reports whether n is a number: a numeric scalar, or a plain
// (unquoted) string with a number's syntax.
func isNumber(n ast.Node) bool {
	switch v := n.(type) {
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return true
	case *ast.StringNode:
		return v.Token != nil && v.Token.Type == token.StringType && yamlNumber.MatchString(v.Value)
	}
	return false
}

func isNull(n ast.Node) bool {
	_, ok := n.(*ast.NullNode)
	return n == nil || ok
}

// kindOf names the kind of value a node holds, for messages.
func kindOf(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode, *ast.LiteralNode:
		if isNumber(n) {
			return "a number"
		}
		return "a string"
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	case *ast.NullNode:
		return "null"
	}
	if n == nil {
		return "nothing"
	}
	return strconv.Quote(n.Type().String())
}
