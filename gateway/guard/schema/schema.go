// Package schema checks JSON against JSON Schema for the guardrails: a
// model's final answer against the request's response_format, and tool-call
// arguments against the parameters an agent declared. It owns the strict
// JSON decoder they share (Decode: duplicate keys, truncation, bad unicode)
// and a bounded cache of compiled schemas keyed by content hash.
//
// Schemas are compiled with github.com/santhosh-tekuri/jsonschema/v6, draft
// 2020-12 unless a schema names another in $schema, with format assertions
// on. Schemas come from agents, so compilation never reads a file or the
// network: a $ref must resolve inside the schema (or to a meta-schema).
package schema

import (
	"container/list"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"aigw/gateway"
)

const (
	// DefaultCacheSize is the number of compiled schemas a Cache made with
	// size 0 keeps, and the size of the package's cache.
	DefaultCacheSize = 1024
	// MaxSchemaBytes bounds the size of a schema to compile.
	MaxSchemaBytes = 256 << 10
	// maxDetails bounds the failures a ValidationError lists.
	maxDetails = 8
)

// Validator checks JSON texts or decoded values. A nil *Validator accepts
// everything (Compile returns nil for text response formats). Validators
// are immutable and safe for concurrent use.
type Validator struct {
	name   string
	object bool               // the top-level value must be an object (json_object)
	sch    *jsonschema.Schema // nil for json_object
}

var jsonObject = &Validator{name: "json_object", object: true}

// ValidationError says why valid JSON does not match the schema.
type ValidationError struct {
	// Schema names the schema (the json_schema name, or "json_object").
	Schema string
	// Details are the failures (the leaves of the validator's error
	// tree, in schema order), at most 8.
	Details []Detail
	// More counts failures left out of Details.
	More int
}

// Detail is one schema failure.
type Detail struct {
	// Pointer is the JSON pointer (RFC 6901) of the failing value in the
	// instance, "" for the top-level value.
	Pointer string
	// Message says what failed. It names keywords, limits and property
	// names, and never quotes a string value of the instance.
	Message string
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("does not match schema")
	if e.Schema != "" {
		fmt.Fprintf(&b, " %q", e.Schema)
	}
	for i, d := range e.Details {
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, " at %q: %s", d.Pointer, d.Message)
	}
	if e.More > 0 {
		fmt.Fprintf(&b, " (and %d more)", e.More)
	}
	return b.String()
}

// Compile returns the validator of a response format, through the
// package's cache: nil (and no error) when rf is nil or asks for text; one
// requiring a JSON object for json_object; one for the schema for
// json_schema, strict or not (strict only tells the provider to constrain
// decoding, the answer is checked the same way).
func Compile(rf *gateway.ResponseFormat) (*Validator, error) { return defaultCache.Compile(rf) }

// CompileSchema compiles a JSON Schema through the package's cache.
func CompileSchema(schema []byte) (*Validator, error) { return defaultCache.CompileSchema(schema) }

var defaultCache = NewCache(DefaultCacheSize)

// Validate checks the final answer text: a Markdown code fence wrapping
// the whole text is removed, then the JSON must decode strictly (a cut
// answer is an error matching ErrIncomplete, duplicate keys are refused)
// and match the schema (*ValidationError naming the JSON pointers).
func (v *Validator) Validate(text string) error {
	if v == nil {
		return nil
	}
	body, _ := StripFence(text)
	val, err := Decode(body, DecodeOptions{})
	if err != nil {
		return err
	}
	return v.ValidateValue(val)
}

// ValidateValue checks a value decoded by Decode.
func (v *Validator) ValidateValue(val any) error {
	if v == nil {
		return nil
	}
	if v.object {
		if _, ok := val.(map[string]any); !ok {
			return &ValidationError{Schema: v.name, Details: []Detail{{Message: "want a JSON object, got " + JSONType(val)}}}
		}
		return nil
	}
	err := v.sch.Validate(val)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("schema %q: %w", v.name, err)
	}
	out := &ValidationError{Schema: v.name}
	collect(ve, out)
	return out
}

// Name is the schema's name: the response format's json_schema name,
// "json_object", or "" for a schema compiled by CompileSchema.
func (v *Validator) Name() string {
	if v == nil {
		return ""
	}
	return v.name
}

var printer = message.NewPrinter(language.English)

// collect appends the leaves of the error tree, where the failures are.
func collect(e *jsonschema.ValidationError, out *ValidationError) {
	if len(e.Causes) == 0 {
		if len(out.Details) == maxDetails {
			out.More++
			return
		}
		out.Details = append(out.Details, Detail{Pointer: pointer(e.InstanceLocation), Message: describe(e.ErrorKind)})
		return
	}
	for _, c := range e.Causes {
		collect(c, out)
	}
}

// describe renders an error kind without quoting instance strings (they
// may hold personal data and the message can reach the ledger).
func describe(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Pattern:
		return fmt.Sprintf("string does not match pattern %q", k.Want)
	case *kind.Format:
		return "not a valid " + k.Want
	case *kind.ContentEncoding:
		return fmt.Sprintf("not %q encoded", k.Want)
	case *kind.ContentMediaType:
		return "not of media type " + k.Want
	}
	return k.LocalizedString(printer)
}

func pointer(toks []string) string {
	var b strings.Builder
	for _, t := range toks {
		b.WriteByte('/')
		b.WriteString(EscapePointer(t))
	}
	return b.String()
}

// JSONType names the JSON type of a decoded JSON value (encoding/json's
// any): object, array, string, boolean, null or number.
func JSONType(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case nil:
		return "null"
	default:
		return "number"
	}
}

// Cache compiles schemas once per content (SHA-256 of the schema bytes)
// and keeps the most recently used ones, compile errors included. It is
// safe for concurrent use.
type Cache struct {
	mu   sync.Mutex
	max  int
	ll   *list.List // of *cacheEntry, most recent first
	byID map[[sha256.Size]byte]*list.Element
}

type cacheEntry struct {
	key [sha256.Size]byte
	v   *Validator
	err error
}

// NewCache returns a cache of at most size schemas (DefaultCacheSize if
// size <= 0).
func NewCache(size int) *Cache {
	if size <= 0 {
		size = DefaultCacheSize
	}
	return &Cache{max: size, ll: list.New(), byID: map[[sha256.Size]byte]*list.Element{}}
}

// Len is the number of schemas cached.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// Compile is the package's Compile through c.
func (c *Cache) Compile(rf *gateway.ResponseFormat) (*Validator, error) {
	if rf == nil {
		return nil, nil
	}
	switch rf.Type {
	case "", "text":
		return nil, nil
	case "json_object":
		return jsonObject, nil
	case "json_schema":
	default:
		return nil, fmt.Errorf("response_format type %q is not text, json_object or json_schema", rf.Type)
	}
	if rf.JSONSchema == nil || len(rf.JSONSchema.Schema) == 0 {
		return nil, errors.New("response_format json_schema has no schema")
	}
	v, err := c.CompileSchema(rf.JSONSchema.Schema)
	if err != nil {
		return nil, fmt.Errorf("response_format json_schema %q: %w", truncate(rf.JSONSchema.Name, 64), err)
	}
	return &Validator{name: rf.JSONSchema.Name, sch: v.sch}, nil
}

// CompileSchema compiles a JSON Schema document, or returns it from c.
func (c *Cache) CompileSchema(schema []byte) (*Validator, error) {
	if len(schema) > MaxSchemaBytes {
		return nil, fmt.Errorf("schema of %d bytes is larger than %d", len(schema), MaxSchemaBytes)
	}
	key := sha256.Sum256(schema)
	c.mu.Lock()
	if el, ok := c.byID[key]; ok {
		c.ll.MoveToFront(el)
		e := el.Value.(*cacheEntry)
		c.mu.Unlock()
		return e.v, e.err
	}
	c.mu.Unlock()

	v, err := compile(schema)

	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[key]; ok { // compiled meanwhile by another caller
		c.ll.MoveToFront(el)
		e := el.Value.(*cacheEntry)
		return e.v, e.err
	}
	c.byID[key] = c.ll.PushFront(&cacheEntry{key: key, v: v, err: err})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.byID, old.Value.(*cacheEntry).key)
	}
	return v, err
}

// schemaURL is where a compiled schema lives for $ref resolution; the
// host is reserved (RFC 2606) and nothing is ever fetched.
const schemaURL = "https://schema.aigw.invalid/schema.json"

// refusingLoader refuses every external $ref (the default would read
// local files).
type refusingLoader struct{}

func (refusingLoader) Load(url string) (any, error) {
	return nil, errors.New("external $ref not allowed: schemas must be self-contained")
}

func compile(schema []byte) (*Validator, error) {
	doc, err := Decode(string(schema), DecodeOptions{})
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(refusingLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		return nil, fmt.Errorf("schema does not compile: %w", err)
	}
	return &Validator{sch: sch}, nil
}
