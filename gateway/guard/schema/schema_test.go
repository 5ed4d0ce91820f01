package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"aigw/gateway"
)

const orderSchema = `{
  "type": "object",
  "properties": {
    "customer": {"type": "string", "minLength": 1},
    "email": {"type": "string", "format": "email"},
    "items": {
      "type": "array",
      "minItems": 1,
      "items": {
        "type": "object",
        "properties": {
          "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
          "qty": {"type": "integer", "minimum": 1}
        },
        "required": ["sku", "qty"],
        "additionalProperties": false
      }
    }
  },
  "required": ["customer", "items"],
  "additionalProperties": false
}`

const validOrder = `{"customer":"ACME","email":"buyer@acme.example","items":[{"sku":"ABC-1234","qty":2},{"sku":"XYZ-0001","qty":1}]}`

func orderFormat(strict bool) *gateway.ResponseFormat {
	return &gateway.ResponseFormat{Type: "json_schema", JSONSchema: &gateway.JSONSchema{
		Name: "order", Schema: json.RawMessage(orderSchema), Strict: &strict}}
}

func mustCompile(t testing.TB, rf *gateway.ResponseFormat) *Validator {
	t.Helper()
	v, err := Compile(rf)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return v
}

// Case 26: an answer to response_format json_schema in a code fence, or
// cut mid-stream; plus controls.
func TestValidateCase26(t *testing.T) {
	for _, strict := range []bool{true, false} {
		v := mustCompile(t, orderFormat(strict))
		for _, test := range []struct {
			name    string
			text    string
			wantErr error  // nil: valid
			pointer string // for *ValidationError
			msg     string // substring of the error
		}{
			{name: "PlainJSON", text: validOrder},
			{name: "PlainJSONWithSpace", text: "\n  " + validOrder + "\n"},
			{name: "FencedJSON", text: "```json\n" + validOrder + "\n```"},
			{name: "FencedNoInfo", text: "```\n" + validOrder + "\n```\n"},
			{name: "FencedTilde", text: "~~~JSON\n" + validOrder + "\n~~~"},
			{name: "FencedOneLine", text: "```json " + validOrder + "```"},
			{name: "TruncatedMidString", text: validOrder[:40], wantErr: ErrIncomplete, msg: "incomplete JSON"},
			{name: "TruncatedMidArray", text: validOrder[:strings.Index(validOrder, "},{")+1], wantErr: ErrIncomplete, msg: "incomplete JSON"},
			{name: "TruncatedAfterKey", text: `{"customer":"ACME","items":`, wantErr: ErrIncomplete, msg: `at "/items"`},
			{name: "TruncatedFenced", text: "```json\n" + validOrder[:60], wantErr: ErrIncomplete, msg: "incomplete JSON"},
			{name: "TruncatedLiteral", text: `{"customer":"A","items":[],"x":tr`, wantErr: ErrIncomplete},
			{name: "Empty", text: "", wantErr: ErrIncomplete},
			{name: "EmptyFence", text: "```json\n```", wantErr: ErrIncomplete},
			{name: "Prose", text: "Sure! Here is the order: " + validOrder, wantErr: ErrSyntax},
			{name: "ProseAroundFence", text: "Here:\n```json\n" + validOrder + "\n```", wantErr: ErrSyntax},
			{name: "DuplicateKey", text: `{"customer":"A","customer":"B","items":[{"sku":"ABC-1234","qty":1}]}`, wantErr: ErrDuplicateKey, msg: `"/customer"`},
			{name: "TrailingComma", text: `{"customer":"A","items":[{"sku":"ABC-1234","qty":1},]}`, wantErr: ErrSyntax},
			{name: "QtyBelowMinimum", text: `{"customer":"A","items":[{"sku":"ABC-1234","qty":0}]}`, wantErr: errValidation, pointer: "/items/0/qty", msg: "minimum"},
			{name: "QtyNotInteger", text: `{"customer":"A","items":[{"sku":"ABC-1234","qty":1.5}]}`, wantErr: errValidation, pointer: "/items/0/qty", msg: "want integer"},
			{name: "MissingRequired", text: `{"customer":"A"}`, wantErr: errValidation, pointer: "", msg: "missing property"},
			{name: "ExtraProperty", text: `{"customer":"A","items":[{"sku":"ABC-1234","qty":1}],"discount":90}`, wantErr: errValidation, pointer: "", msg: "discount"},
			{name: "BadPattern", text: `{"customer":"A","items":[{"sku":"secret-value","qty":1}]}`, wantErr: errValidation, pointer: "/items/0/sku", msg: "pattern"},
			{name: "BadFormat", text: `{"customer":"A","email":"not-an-address","items":[{"sku":"ABC-1234","qty":1}]}`, wantErr: errValidation, pointer: "/email", msg: "not a valid email"},
			{name: "HugeNumber", text: `{"customer":"A","items":[{"sku":"ABC-1234","qty":1e10000000}]}`, wantErr: ErrNumber, msg: `"/items/0/qty"`},
			{name: "NotAnObject", text: `[1,2]`, wantErr: errValidation, pointer: "", msg: "want object"},
		} {
			t.Run(fmt.Sprintf("strict=%v/%s", strict, test.name), func(t *testing.T) {
				err := v.Validate(test.text)
				if test.wantErr == nil {
					if err != nil {
						t.Fatalf("Validate(%q) = %v; want nil", test.text, err)
					}
					return
				}
				if err == nil {
					t.Fatalf("Validate(%q) = nil; want %v", test.text, test.wantErr)
				}
				if test.wantErr == errValidation {
					var ve *ValidationError
					if !errors.As(err, &ve) {
						t.Fatalf("Validate(%q) = %v (%T); want *ValidationError", test.text, err, err)
					}
					if !hasPointer(ve, test.pointer) {
						t.Errorf("Validate(%q) = %v; want a detail at %q", test.text, err, test.pointer)
					}
				} else if !errors.Is(err, test.wantErr) || !errors.Is(err, ErrInvalidJSON) {
					t.Fatalf("Validate(%q) = %v; want %v", test.text, err, test.wantErr)
				}
				if !strings.Contains(err.Error(), test.msg) {
					t.Errorf("Validate(%q) = %q; want it to contain %q", test.text, err, test.msg)
				}
				for _, secret := range []string{"secret-value", "not-an-address"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q quotes the instance value %q", err, secret)
					}
				}
			})
		}
	}
}

var errValidation = errors.New("validation")

func hasPointer(ve *ValidationError, p string) bool {
	for _, d := range ve.Details {
		if d.Pointer == p {
			return true
		}
	}
	return false
}

// Every cut of a valid answer is reported as incomplete, never accepted
// and never as another error.
func TestValidateEveryTruncation(t *testing.T) {
	v := mustCompile(t, orderFormat(true))
	fenced := "```json\n" + validOrder + "\n```"
	for _, text := range []string{validOrder, fenced} {
		for n := 0; n < len(text); n++ {
			if strings.HasPrefix(text, "```") && n >= len("```json\n")+len(validOrder) {
				break // the JSON is whole, only the closing fence is cut
			}
			cut := text[:n]
			err := v.Validate(cut)
			if !errors.Is(err, ErrIncomplete) {
				t.Fatalf("Validate(%q) = %v; want ErrIncomplete", cut, err)
			}
		}
	}
}

func TestCompile(t *testing.T) {
	for _, test := range []struct {
		name    string
		rf      *gateway.ResponseFormat
		wantNil bool
		wantErr string
	}{
		{name: "Nil", rf: nil, wantNil: true},
		{name: "Text", rf: &gateway.ResponseFormat{Type: "text"}, wantNil: true},
		{name: "JSONObject", rf: &gateway.ResponseFormat{Type: "json_object"}},
		{name: "UnknownType", rf: &gateway.ResponseFormat{Type: "yaml"}, wantErr: "not text, json_object or json_schema"},
		{name: "NoSchema", rf: &gateway.ResponseFormat{Type: "json_schema"}, wantErr: "has no schema"},
		{name: "EmptySchema", rf: &gateway.ResponseFormat{Type: "json_schema", JSONSchema: &gateway.JSONSchema{Name: "x"}}, wantErr: "has no schema"},
		{name: "SchemaNotJSON", rf: schemaFormat(`{"type":`), wantErr: "incomplete JSON"},
		{name: "SchemaInvalid", rf: schemaFormat(`{"type":"objekt"}`), wantErr: "does not compile"},
		{name: "SchemaDuplicateKey", rf: schemaFormat(`{"type":"object","type":"string"}`), wantErr: "duplicate key"},
		{name: "InternalRef", rf: schemaFormat(`{"$defs":{"n":{"type":"integer"}},"type":"object","properties":{"a":{"$ref":"#/$defs/n"}}}`)},
		{name: "RemoteRef", rf: schemaFormat(`{"$ref":"https://example.com/s.json"}`), wantErr: "external $ref not allowed"},
		{name: "TooLarge", rf: schemaFormat(`{"description":"` + strings.Repeat("x", MaxSchemaBytes) + `"}`), wantErr: "larger than"},
	} {
		t.Run(test.name, func(t *testing.T) {
			v, err := Compile(test.rf)
			if test.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), test.wantErr) {
					t.Fatalf("Compile = %v; want error containing %q", err, test.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Compile = %v", err)
			}
			if (v == nil) != test.wantNil {
				t.Fatalf("Compile = %v; want nil %v", v, test.wantNil)
			}
		})
	}
}

func schemaFormat(s string) *gateway.ResponseFormat {
	return &gateway.ResponseFormat{Type: "json_schema", JSONSchema: &gateway.JSONSchema{Name: "s", Schema: json.RawMessage(s)}}
}

// An agent's schema must not make the gateway read its files: the file
// referenced here is a valid schema the default loader would load.
func TestCompileRefusesFileRef(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.json")
	if err := os.WriteFile(path, []byte(`{"type":"string"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"file://" + path, path} {
		_, err := Compile(schemaFormat(fmt.Sprintf(`{"$ref":%q}`, ref)))
		if err == nil || !strings.Contains(err.Error(), "external $ref not allowed") {
			t.Errorf("Compile($ref %q) = %v; want external $ref refused", ref, err)
		}
	}
}

func TestJSONObject(t *testing.T) {
	v := mustCompile(t, &gateway.ResponseFormat{Type: "json_object"})
	if err := v.Validate(`{"any":["thing",1]}`); err != nil {
		t.Errorf("Validate(object) = %v", err)
	}
	if err := v.Validate("```json\n{}\n```"); err != nil {
		t.Errorf("Validate(fenced object) = %v", err)
	}
	for _, text := range []string{`[1]`, `"s"`, `12`, `null`} {
		var ve *ValidationError
		if err := v.Validate(text); !errors.As(err, &ve) {
			t.Errorf("Validate(%q) = %v; want *ValidationError", text, err)
		}
	}
	if err := v.Validate(`{"a":`); !errors.Is(err, ErrIncomplete) {
		t.Errorf("Validate(truncated) = %v; want ErrIncomplete", err)
	}
	var none *Validator
	if err := none.Validate("not json at all"); err != nil {
		t.Errorf("nil Validator: Validate = %v; want nil", err)
	}
}

func TestDraftFromSchemaKeyword(t *testing.T) {
	// Draft-07 "items" as an array is a tuple; in 2020-12 it is invalid.
	rf := schemaFormat(`{"$schema":"http://json-schema.org/draft-07/schema#","type":"array","items":[{"type":"string"},{"type":"integer"}]}`)
	v := mustCompile(t, rf)
	if err := v.Validate(`["a",1]`); err != nil {
		t.Errorf("draft-07 tuple: %v", err)
	}
	if err := v.Validate(`[1,"a"]`); err == nil {
		t.Errorf("draft-07 tuple accepted [1,\"a\"]")
	}
}

func TestCacheBoundedAndShared(t *testing.T) {
	c := NewCache(2)
	s := func(i int) []byte { return []byte(fmt.Sprintf(`{"type":"object","maxProperties":%d}`, i)) }
	v1, err := c.CompileSchema(s(1))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := c.CompileSchema(s(1))
	if again.sch != v1.sch {
		t.Errorf("same schema compiled twice")
	}
	c.CompileSchema(s(2))
	c.CompileSchema(s(3))
	if c.Len() != 2 {
		t.Errorf("Len = %d; want 2", c.Len())
	}
	if again, _ := c.CompileSchema(s(1)); again.sch == v1.sch {
		t.Errorf("least recently used schema was not evicted")
	}
	_, err1 := c.CompileSchema([]byte(`{"type":1}`))
	_, err2 := c.CompileSchema([]byte(`{"type":1}`))
	if err1 == nil || err1 != err2 {
		t.Errorf("compile error not cached: %v, %v", err1, err2)
	}
}

func TestValidateConcurrent(t *testing.T) {
	c := NewCache(4)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				v, err := c.Compile(orderFormat(i%2 == 0))
				if err != nil {
					t.Error(err)
					return
				}
				if err := v.Validate(validOrder); err != nil {
					t.Error(err)
				}
				if err := v.Validate(fmt.Sprintf(`{"customer":"c%d","items":[]}`, g)); err == nil {
					t.Error("minItems not enforced")
				}
			}
		}()
	}
	wg.Wait()
}

func TestRepairable(t *testing.T) {
	v := mustCompile(t, orderFormat(true))
	for _, test := range []struct {
		name, text, want string
		ok               bool
	}{
		{name: "AlreadyJSON", text: validOrder, want: validOrder, ok: true},
		{name: "Fence", text: "```json\n" + validOrder + "\n```", want: validOrder, ok: true},
		{name: "BOMAndSpace", text: "\ufeff " + validOrder + "\n", want: validOrder, ok: true},
		{name: "TrailingCommas", text: "```json\n{\"customer\":\"A\",\"items\":[{\"sku\":\"ABC-1234\",\"qty\":1,},],}\n```",
			want: `{"customer":"A","items":[{"sku":"ABC-1234","qty":1}]}`, ok: true},
		{name: "CommaInStringKept", text: `{"customer":"A,}","items":[{"sku":"ABC-1234","qty":1,}]}`,
			want: `{"customer":"A,}","items":[{"sku":"ABC-1234","qty":1}]}`, ok: true},
		{name: "EscapedQuoteInString", text: `{"customer":"a\",]","items":[{"sku":"ABC-1234","qty":1}],}`,
			want: `{"customer":"a\",]","items":[{"sku":"ABC-1234","qty":1}]}`, ok: true},
		{name: "TruncatedNotCompleted", text: validOrder[:50], want: validOrder[:50]},
		{name: "Prose", text: "I cannot do that.", want: "I cannot do that."},
		{name: "SingleQuotes", text: `{'customer':'A'}`, want: `{'customer':'A'}`},
	} {
		t.Run(test.name, func(t *testing.T) {
			got, ok := Repairable(test.text)
			if got != test.want || ok != test.ok {
				t.Fatalf("Repairable(%q) = %q, %v; want %q, %v", test.text, got, ok, test.want, test.ok)
			}
			if ok {
				if err := v.Validate(got); err != nil {
					t.Errorf("repaired text fails: %v", err)
				}
			}
		})
	}
}

func TestStripFence(t *testing.T) {
	for _, test := range []struct {
		text, want string
		fenced     bool
	}{
		{"{}", "{}", false},
		{"```json\n{}\n```", "{}", true},
		{"  ```\n[1]\n```  ", "[1]", true},
		{"```json\n{\"a\":1", `{"a":1`, true},
		{"```js```on\n{}", "```js```on\n{}", false},
		{"text ```json\n{}\n```", "text ```json\n{}\n```", false},
	} {
		got, fenced := StripFence(test.text)
		if got != test.want || fenced != test.fenced {
			t.Errorf("StripFence(%q) = %q, %v; want %q, %v", test.text, got, fenced, test.want, test.fenced)
		}
	}
}

// validateBenchDoc is about 4 KiB of order JSON matching orderSchema.
func validateBenchDoc() string {
	var b strings.Builder
	b.WriteString(`{"customer":"ACME Corporation","email":"buyer@acme.example","items":[`)
	for i := 0; b.Len() < 4096-40; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"ABC-%04d","qty":%d}`, i, i+1)
	}
	b.WriteString(`]}`)
	return b.String()
}

const proseSchema = `{
  "type": "object",
  "properties": {
    "title": {"type": "string", "maxLength": 200},
    "summary": {"type": "string"},
    "points": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
    "confidence": {"type": "number", "minimum": 0, "maximum": 1}
  },
  "required": ["title", "summary", "points"],
  "additionalProperties": false
}`

// proseBenchDoc is about 4 KiB of mostly text matching proseSchema.
func proseBenchDoc() string {
	sentence := "The gateway checks each answer against the schema the agent asked for. "
	points := make([]string, 12)
	for i := range points {
		points[i] = fmt.Sprintf("Point %d: %s", i, sentence)
	}
	doc, _ := json.Marshal(map[string]any{
		"title": "Quarterly review", "summary": strings.Repeat(sentence, 38), "points": points, "confidence": 0.82})
	return string(doc)
}

// BenchmarkValidate4KiB validates 4 KiB answers: "items" has 150
// objects with a pattern, an integer and a minimum each (the validator's
// worst case: every number becomes a big.Rat), "prose" a few long strings.
func BenchmarkValidate4KiB(b *testing.B) {
	for _, bench := range []struct {
		name string
		rf   *gateway.ResponseFormat
		doc  string
	}{
		{"shape=items", orderFormat(true), validateBenchDoc()},
		{"shape=prose", schemaFormat(proseSchema), proseBenchDoc()},
	} {
		b.Run(bench.name, func(b *testing.B) {
			v := mustCompile(b, bench.rf)
			if err := v.Validate(bench.doc); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(bench.doc)))
			b.ReportAllocs()
			for b.Loop() {
				if err := v.Validate(bench.doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode4KiB(b *testing.B) {
	doc := validateBenchDoc()
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(doc, DecodeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompileCached(b *testing.B) {
	rf := orderFormat(true)
	mustCompile(b, rf)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(rf); err != nil {
			b.Fatal(err)
		}
	}
}
