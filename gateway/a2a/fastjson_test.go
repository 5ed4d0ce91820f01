package a2a

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"aigw/gateway/internal/jsonscan"
)

// sendSeeds are message/send params of every shape the proxy reads.
var sendSeeds = []string{
	`{"message":{"kind":"message","role":"user","messageId":"m-1","parts":[{"kind":"text","text":"hi"}]}}`,
	` { "message" : { "role" : "user" , "messageId":"m-1", "parts":[ {"kind":"text","text":"a\"b\u00e9"}, {"kind":"file","file":{"uri":"https://x"}} ,{"kind":"data","data":[1, 2.5e3,true,null]}] , "taskId":"t-9",
	"metadata":{"z":1,"aigw.delegation":"aigwdt1.abc.def","a":{"b":[]}}, "contextId":"c"} , "metadata":{"aigw.delegation_request":{"scopes":["tool:x"],"budget":{"nano_usd":5}},"k":"v"},
	"configuration":{"blocking":true,"pushNotificationConfig":{"url":"https://hook.example/x","token":"whsec_abc"},"acceptedOutputModes":["text"]}} `,
	`{"message":{"role":"user","messageId":"m","parts":[{"kind":"text"}],"metadata":null,"taskId":null},"metadata":{},"configuration":null}`,
	`{"message":{"role":"user","messageId":"m","parts":[{"kind":"text"}],"metadata":{"aigw.delegation":null}},"metadata":{"aigw.delegation_request":null},"configuration":{"pushNotificationConfig":null}}`,
	// encoding/json's path: a key matched case-insensitively, an escaped
	// value, a duplicate key, errors.
	`{"message":{"ROLE":"user","messageId":"m","parts":[{"kind":"text"}]}}`,
	`{"message":{"role":"user","messageId":"m\u0031","parts":[{"Kind":"text"}]}}`,
	`{"message":{"role":"user","messageId":"m","parts":[{"kind":"text"}]},"message":{"role":"agent"}}`,
	`{"message":{"role":"user","messageId":"m","parts":[{"kind":"text","kind":"file"}]}}`,
	`{"message":{"role":"user","messageId":"m","parts":[]}}`,
	`{"message":{"role":"user","messageId":5,"parts":[{"kind":"text"}]}}`,
	`{"message":{"role":"user","messageId":"m","parts":[{"kind":"file","file":null}]}}`,
	`{"message":{"role":"user","messageId":"m","parts":[{"kind":"text"}],"metadata":{"aigw.delegation":7}}}`,
	`{"message":{"role":"user","messageId":"m","parts":[{"kind":"text"}]},"metadata":{"aigw.delegation_request":{"scopes":"x"}}}`,
	`{"message":{"role":"user","messageId":"m","parts":[{"kind":"text"}]},"metadata":{"aigw.delegation_request":{"more":1}}}`,
	`{"message":{"role":"user","messageId":"m","parts":[{"kind":"text"}]},"configuration":{"pushNotificationConfig":{"url":5}}}`,
	`{"message":{"role":"user","messageId":"m","parts":[{"kind":"text"}]},"configuration":[]}`,
	`{"message":{"role":"user","messageId":"m","parts":[{"kind":"text"}]},"a<b":1}`,
	`{"message":{"role":"user","messageId":"\xff","parts":[{"kind":"text"}]}}`,
	`{"message":{"role":"user","messageId":"m","parts":[{"kind":"text"}]}`,
	`{"message":null}`, `[]`, `null`, ``,
}

// sameSend checks that fastSend, when it reads params, reads what
// decodeSend does, and forwards the same bytes.
func sameSend(t *testing.T, params []byte) (fast bool) {
	t.Helper()
	fsp, ok := fastSend(params)
	if !ok {
		return false
	}
	sp, rerr := decodeSend(params)
	if rerr != nil {
		t.Fatalf("fastSend(%q) read params that encoding/json refuses: %v", params, rerr)
	}
	if !reflect.DeepEqual(fsp.message, sp.message) || fsp.token != sp.token || !reflect.DeepEqual(fsp.request, sp.request) ||
		!reflect.DeepEqual(fsp.push, sp.push) || !bytes.Equal(fsp.rawMessage, sp.rawMessage) {
		t.Fatalf("fastSend(%q) = %+v %q %+v %+v; encoding/json: %+v %q %+v %+v", params,
			fsp.message, fsp.token, fsp.request, fsp.push, sp.message, sp.token, sp.request, sp.push)
	}
	for _, fw := range []struct {
		token, up string
		push      *PushNotificationConfig
	}{{"aigwdt1.x.y", "", nil}, {"aigwdt1.x<&>.y", "up-1", &PushNotificationConfig{ID: "aigw", URL: "https://gw/x", Token: "t"}}} {
		got, err1 := fsp.forward(fw.token, fw.up, fw.push)
		want, err2 := sp.forward(fw.token, fw.up, fw.push)
		if err1 != nil || err2 != nil || !bytes.Equal(got, want) {
			t.Fatalf("forward of %q:\n fast %s (%v)\n json %s (%v)", params, got, err1, want, err2)
		}
		if !json.Valid(got) {
			t.Fatalf("forward of %q = %s: not JSON", params, got)
		}
	}
	return true
}

// sameRequest checks that fastRequest, when it reads body, reads what
// json.Unmarshal does.
func sameRequest(t *testing.T, body []byte) bool {
	t.Helper()
	got, ok := fastRequest(body)
	if !ok {
		return false
	}
	var want Request
	if err := json.Unmarshal(body, &want); err != nil {
		t.Fatalf("fastRequest(%q) read what json.Unmarshal refuses: %v", body, err)
	}
	if got.JSONRPC != want.JSONRPC || got.Method != want.Method || !bytes.Equal(got.ID, want.ID) || !bytes.Equal(got.Params, want.Params) {
		t.Fatalf("fastRequest(%q) = %+v; json.Unmarshal: %+v", body, got, want)
	}
	return true
}

// sameResponse checks the fast readings of an agent's answer against
// encoding/json's.
func sameResponse(t *testing.T, b []byte) {
	t.Helper()
	if got, ok := fastResponse(b); ok {
		var want Response
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("fastResponse(%q) read what json.Unmarshal refuses: %v", b, err)
		}
		if got.JSONRPC != want.JSONRPC || !bytes.Equal(got.ID, want.ID) || !bytes.Equal(got.Result, want.Result) || want.Error != nil {
			t.Fatalf("fastResponse(%q) = %+v; json.Unmarshal: %+v", b, got, want)
		}
	}
	if got, ok := fastResultHead(b); ok {
		var want resultHead
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("fastResultHead(%q) read what json.Unmarshal refuses: %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fastResultHead(%q) = %+v; json.Unmarshal: %+v", b, got, want)
		}
		if got.state() != want.slowState() {
			t.Fatalf("state of %q = %q; json.Unmarshal: %q", b, got.state(), want.slowState())
		}
	}
}

func TestFastSend(t *testing.T) {
	fast := 0
	for _, s := range sendSeeds {
		if sameSend(t, []byte(s)) {
			fast++
		}
		sp, rerr := parseSend([]byte(s))
		want, wantErr := decodeSend([]byte(s))
		if !reflect.DeepEqual(rerr, wantErr) || (sp == nil) != (want == nil) {
			t.Errorf("parseSend(%q) = %v; encoding/json: %v", s, rerr, wantErr)
		}
	}
	if fast != 4 {
		t.Errorf("fastSend read %d of the seeds; want the first 4", fast)
	}
	// The benchmark's request takes the fast path.
	if !sameRequest(t, hopBody(1)) {
		t.Errorf("fastRequest refused %s", hopBody(1))
	}
	req, _ := fastRequest(hopBody(1))
	if !sameSend(t, req.Params) {
		t.Errorf("fastSend refused %s", req.Params)
	}
}

func TestFastRequest(t *testing.T) {
	for _, test := range []struct {
		body string
		fast bool
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"a":1}}`, true},
		{` {"params" : [1] , "id" : "x\u0041", "method":"m", "jsonrpc":"2.0", "other":{"x":[]}} `, true},
		{`{"jsonrpc":"2.0","id":1,"id":null,"method":"m"}`, true},
		{`{"JSONRPC":"2.0","id":1,"method":"m"}`, false},
		{`{"jsonrpc":null,"id":1,"method":"m"}`, false},
		{`{"jsonrpc":"2.0","id":1,"method":"m\u002f"}`, false},
		{`{"jsonrpc":"2.0","id":1,"method":"m"`, false},
		{`{"jsonrpc":"2.0","id":01,"method":"m"}`, false},
		{`{"jsonrpc":"2.0","id":1,"method":"m"} x`, false},
		{`[{"jsonrpc":"2.0"}]`, false},
	} {
		if got := sameRequest(t, []byte(test.body)); got != test.fast {
			t.Errorf("fastRequest(%q) read it: %v; want %v", test.body, got, test.fast)
		}
	}
}

func TestFastResponse(t *testing.T) {
	for _, s := range responseSeeds {
		sameResponse(t, []byte(s))
	}
	task := `{"kind":"task","id":"t-1","contextId":"ctx","status":{"state":"completed"},"artifacts":[{"artifactId":"a","parts":[{"kind":"text","text":"done"}]}]}`
	if _, ok := fastResultHead([]byte(task)); !ok {
		t.Errorf("fastResultHead refused %s", task)
	}
	if _, ok := fastResponse(appendResponse(nil, json.RawMessage(`7`), json.RawMessage(task), nil)); !ok {
		t.Errorf("fastResponse refused the fast agent's answer")
	}
}

var responseSeeds = []string{
	`{"jsonrpc":"2.0","id":7,"result":{"kind":"task","id":"t-1","contextId":"ctx","status":{"state":"completed","timestamp":"x"},"final":true}}`,
	`{"jsonrpc":"2.0","id":"a","result":{"kind":"status-update","taskId":"t","status":{"message":{"x":1},"state":"working"},"final":false},"error":null}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"nope"}}`,
	`{"jsonrpc":"2.0","id":1,"Result":{}}`,
	`{"kind":"task","id":"t","status":null,"final":null,"contextId":null}`,
	`{"kind":"task","id":"t","status":{"State":"completed"}}`,
	`{"kind":"task","id":"t","status":{"state":"completed","state":"failed"}}`,
	`{"kind":"task","id":"t","status":{"state":5}}`,
	`{"kind":"task","id":"t","status":"completed"}`,
	`{"kind":"task","id":"t","final":1}`,
	`{"kind":"task","id":"t\u0031"}`,
}

func FuzzFastJSON(f *testing.F) {
	for _, s := range sendSeeds {
		f.Add([]byte(s))
	}
	for _, s := range responseSeeds {
		f.Add([]byte(s))
	}
	f.Add(hopBody(1))
	f.Fuzz(func(t *testing.T, in []byte) {
		if jsonscan.Valid(in) && !json.Valid(in) {
			t.Fatalf("jsonscan.Valid(%q) but not json.Valid", in)
		}
		sameRequest(t, in)
		sameSend(t, in)
		sameResponse(t, in)
	})
}
