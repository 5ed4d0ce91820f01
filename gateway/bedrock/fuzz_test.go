package bedrock

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/schemas"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	smithyeventstream "github.com/aws/smithy-go/eventstream"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/aws/smithy-go/transport/http/protocol/restjson1"

	"aigw/gateway"
	"aigw/gateway/providertest"
)

// FuzzTranslateRequest: any chat request either translates or is refused
// with a 400 *gateway.Error, never a panic, and is never modified.
func FuzzTranslateRequest(f *testing.F) {
	for _, seed := range []string{
		`{"model":"m","messages":[{"role":"user","content":"Hello"}]}`,
		`{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"` + pngDataURL + `"}}]}],"max_tokens":5,"temperature":0.2,"top_p":0.9,"stop":["a"]}`,
		`{"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":1e400}"}}]},{"role":"tool","tool_call_id":"c","content":"r"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"none"}`,
		`{"model":"m","messages":[{"role":"user","content":"q"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f"}}}`,
		`{"model":"m","messages":[{"role":"user","content":"q"}],"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"}}},"reasoning_effort":"high"}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/webp;base64"}}]}],"n":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req gateway.ChatRequest
		if json.Unmarshal(data, &req) != nil {
			return
		}
		before, err := json.Marshal(&req)
		if err != nil {
			return
		}
		params, err := translateRequest(&req)
		if after, _ := json.Marshal(&req); !bytes.Equal(before, after) {
			t.Fatalf("translateRequest modified the request:\n%s\n%s", before, after)
		}
		if err != nil {
			var ge *gateway.Error
			if !errors.As(err, &ge) || ge.Status != http.StatusBadRequest {
				t.Fatalf("error %v is not a 400 *gateway.Error", err)
			}
			return
		}
		if len(params.messages) == 0 {
			t.Fatal("translated to no turns")
		}
		for i := 1; i < len(params.messages); i++ {
			if params.messages[i].Role == params.messages[i-1].Role {
				t.Fatalf("turns %d and %d have the same role", i-1, i)
			}
		}
		for _, m := range params.messages {
			if len(m.Content) == 0 {
				t.Fatal("a turn without content")
			}
		}
		if params.converseInput(req.Model) == nil || params.streamInput(req.Model) == nil {
			t.Fatal("no input")
		}
	})
}

// FuzzStream feeds arbitrary bytes as a ConverseStream body through the
// SDK's event-stream decoding (its protocol, schema and type registry, as
// its ConverseStream deserializer wires them, without HTTP so the fuzzer
// sees deterministic coverage) and the provider's stream translation: the
// stream ends cleanly only after both end markers, and every failure is a
// ProviderError, a malformed or a cut stream; never a panic. The HTTP path
// itself is covered by TestStreamFraming and TestStreamFaults.
func FuzzStream(f *testing.F) {
	for _, name := range []string{"bedrock/converse_stream.jsonl", "bedrock/converse_stream_tool_use.jsonl"} {
		body := encodeFixture(f, name)
		f.Add(body)
		f.Add(body[:len(body)/2])
		bad := bytes.Clone(body)
		bad[len(bad)/3] ^= 0x20
		f.Add(bad)
	}
	f.Add(bytes.Join([][]byte{
		event(f, "messageStart", `{"role":"assistant"}`),
		frame(f, map[string]string{":message-type": "exception", ":exception-type": "throttlingException", ":content-type": "application/json"}, `{"message":"slow down"}`),
	}, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newStream(context.Background(), "fuzz", sdkEventStream(data), &bodyRecorder{}, newTranslator("chatcmpl-fuzz", testModel, 0))
		_, err := collect(s)
		var pe *gateway.ProviderError
		switch {
		case err == nil:
			if !s.tr.done() {
				t.Fatal("clean end without messageStop and metadata")
			}
		case errors.As(err, &pe), errors.Is(err, gateway.ErrStreamMalformed), errors.Is(err, gateway.ErrStreamCut):
		default:
			t.Fatalf("unclassified stream error: %v", err)
		}
	})
}

// sdkEventStream decodes body into ConverseStream events the way the SDK's
// ConverseStream deserializer does.
func sdkEventStream(body []byte) *bedrockruntime.ConverseStreamEventStream {
	r := smithyhttp.NewEventStreamReader(restjson1.New(nil), schemas.ConverseStreamOutput, bedrockruntime.TypeRegistry, io.NopCloser(bytes.NewReader(body)))
	u := &unionReader{r: r, ch: make(chan types.ConverseStreamOutput), done: make(chan struct{})}
	go u.pipe()
	return bedrockruntime.NewConverseStreamEventStream(func(es *bedrockruntime.ConverseStreamEventStream) { es.Reader = u })
}

// unionReader wraps decoded events in the ConverseStreamOutput union, as
// the SDK's (unexported) reader does.
type unionReader struct {
	r    *smithyhttp.EventStreamReader
	ch   chan types.ConverseStreamOutput
	done chan struct{}
	once sync.Once
}

func (u *unionReader) pipe() {
	defer close(u.ch)
	for event := range u.r.Events() {
		var ev types.ConverseStreamOutput
		switch v := event.(type) {
		case *types.ContentBlockDeltaEvent:
			ev = &types.ConverseStreamOutputMemberContentBlockDelta{Value: *v}
		case *types.ContentBlockStartEvent:
			ev = &types.ConverseStreamOutputMemberContentBlockStart{Value: *v}
		case *types.ContentBlockStopEvent:
			ev = &types.ConverseStreamOutputMemberContentBlockStop{Value: *v}
		case *types.MessageStartEvent:
			ev = &types.ConverseStreamOutputMemberMessageStart{Value: *v}
		case *types.MessageStopEvent:
			ev = &types.ConverseStreamOutputMemberMessageStop{Value: *v}
		case *types.ConverseStreamMetadataEvent:
			ev = &types.ConverseStreamOutputMemberMetadata{Value: *v}
		case *smithyeventstream.UnknownUnionMember:
			ev = &types.UnknownUnionMember{Tag: v.Tag, Value: v.Value}
		default:
			continue
		}
		select {
		case u.ch <- ev:
		case <-u.done:
			return
		}
	}
}

func (u *unionReader) Events() <-chan types.ConverseStreamOutput { return u.ch }

func (u *unionReader) Close() error {
	u.once.Do(func() { close(u.done) })
	return u.r.Close()
}

func (u *unionReader) Err() error { return u.r.Err() }

// encodeFixture encodes a recorded stream in the event-stream framing.
func encodeFixture(f testing.TB, name string) []byte {
	raw, err := os.ReadFile(providertest.FixturePath(name))
	if err != nil {
		f.Fatal(err)
	}
	var out bytes.Buffer
	enc := eventstream.NewEncoder()
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var ev struct {
			Event   string          `json:"event"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			f.Fatal(err)
		}
		var msg eventstream.Message
		msg.Headers.Set(":event-type", eventstream.StringValue(ev.Event))
		msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
		msg.Headers.Set(":message-type", eventstream.StringValue("event"))
		msg.Payload = ev.Payload
		if err := enc.Encode(&out, msg); err != nil {
			f.Fatal(err)
		}
	}
	return out.Bytes()
}
