package injection

// The phrase tables. Every entry is normalized like the text (textnorm
// with all options) when the Detector is built, so "1gn0r3", "іgnоrе" and
// "i g n o r e" all meet "ignore". Weights are each signal's confidence
// alone; Score combines them (see injection.go).

// Finding types.
const (
	TypeOverride   = "instruction_override"
	TypeTemplate   = "template_marker"
	TypePersona    = "jailbreak_persona"
	TypeExtraction = "prompt_extraction"
	TypeExfil      = "exfiltration"
	TypeHidden     = "hidden_text"
	TypeEncoded    = "encoded_payload"
	TypeScanLimit  = "scan_limit"
)

// cat is what an automaton pattern is for.
type cat uint8

const (
	catDirect    cat = iota // a finding on its own
	catLineStart            // a finding when it starts a line (a fake turn)
	catVerb                 // override verb: ignore, disregard… (then qualifiers and objects follow)
	catXTarget              // extraction target: your instructions, the text above… (after a verb)
	catSend                 // send, forward, upload… (then "to")
	catTool                 // tool, function, plugin… (after a call verb)
	catRot13                // a ROT13 cue: decode the text with ROT13
	catYouAre               // a quoted "you are": extraction after "starting with"
	numCats
)

// The automaton holds the phrases and the rarer word of each proximity
// rule (verbs, targets); the common words around them (qualifiers,
// objects, "to", call verbs) are looked up in word sets in a small window,
// so that ordinary text makes few automaton matches.

// entry is one pattern. strong marks the strong verbs and qualifiers.
type entry struct {
	text   string
	cat    cat
	typ    string
	rule   string
	w      float64
	bound  bool // whole words only
	strong bool
}

// Weights of the proximity rules (verb … qualifier … object and so on).
const (
	wOverrideStrong  = 0.9  // strong verb, strong qualifier, object
	wOverrideMixed   = 0.6  // one of them weak
	wOverrideWeak    = 0.35 // both weak
	wOverrideNoQual  = 0.45 // strong verb and object, nothing between that qualifies
	wOverrideAdj     = 0.45 // strong verb right before a strong qualifier ("ignore the above")
	wOverrideAdjAnd  = 0.7  // …followed by "and" ("ignore the above and say…")
	wExtract         = 0.7
	wSendTo          = 0.35
	wToolCall        = 0.35
	overrideWindow   = 72 // bytes of shadow from the verb to the end of the object
	extractWindow    = 56
	sendWindow       = 40
	toolWindow       = 28
	layerBoost       = 1.25 // a signal inside an encoding counts extra
	maxLayerWeight   = 0.98
	wEncodedWithHits = 0.5  // an encoded run whose content holds signals
	wHiddenAlone     = 0.3  // CSS-hidden HTML with nothing imperative in it
	wHiddenImper     = 0.7  // hidden HTML (CSS or comment) with imperative text
	wTags            = 0.6  // Unicode tag characters carrying text
	wVarSel          = 0.6  // variation selectors carrying bytes
	wBidi            = 0.3  // bidi override or isolate controls
	wZeroWidth       = 0.25 // zero-width characters inside words
	wImageQuery      = 0.6  // markdown or HTML image whose query carries data
	wImagePlainQuery = 0.25 // …or only an ordinary-looking query
	wLinkQuery       = 0.3  // markdown link whose query carries data
	wSplit           = 0.3  // variables assigned, then concatenated
)

var (
	strongVerbs = []string{"ignore", "ignoring", "disregard", "disregarding", "forget", "forgetting", "override", "overriding",
		"bypass", "bypassing", "neglect", "dismiss", "discard", "abandon", "pay no attention to", "do not follow",
		"don't follow", "stop following", "do not obey", "don't obey", "stop obeying", "circumvent"}
	weakVerbs    = []string{"skip", "drop", "cancel", "delete", "remove", "clear", "erase", "reset", "overwrite", "replace", "set aside"}
	strongQuals  = []string{"previous", "prior", "above", "earlier", "preceding", "foregoing", "former", "initial", "original", "system", "developer", "your", "all previous", "all prior", "above-mentioned", "aforementioned", "safety", "default", "existing", "built-in", "hidden", "pre-existing", "openai", "anthropic", "all your"}
	weakQuals    = []string{"all", "any", "every", "these", "those", "old", "other", "current", "given", "my"}
	objects      = []string{"instructions", "instruction", "rules", "rule", "prompt", "prompts", "directions", "directives", "directive", "guidelines", "guidance", "constraints", "commands", "context", "messages", "programming", "policies", "policy", "restrictions", "guardrails", "safeguards", "orders", "training", "filters", "settings", "conversation", "text", "content", "input", "limitations", "ethics", "principles", "protocols"}
	fillers      = []string{"all", "the", "of", "any", "every", "everything", "each", "and", "your", "my", "these", "those", "that", "this", "to", "what", "was", "said", "written", "is", "it"}
	adjQuals     = []string{"previous", "prior", "above", "earlier", "preceding", "foregoing"}
	xVerbs       = []string{"repeat", "print", "reveal", "show", "output", "display", "tell me", "give me", "share", "dump", "leak", "disclose", "list", "write out", "write down", "recite", "spell out", "provide", "return", "echo", "copy", "paste", "translate", "summarize", "what is", "what are", "what's", "what were", "what was", "expose", "type out"}
	xTargets     = []string{"your instructions", "your system prompt", "the system prompt", "your prompt", "your initial prompt", "initial prompt", "your rules", "your guidelines", "your system message", "the system message", "the text above", "the words above", "everything above", "all of the above", "the above text", "text above", "the previous text", "your original instructions", "your hidden instructions", "your configuration", "your directives", "the instructions you were given", "instructions above", "the above instructions", "your first message", "the first message", "the conversation so far", "everything before this", "all text above", "your programming", "your initial instructions", "the prompt above", "your context", "your secret instructions", "your system instructions", "the developer message", "your developer message", "your preprompt", "your pre-prompt", "your custom instructions"}
	sendVerbs    = []string{"send", "forward", "email", "e-mail", "mail", "post", "upload", "transmit", "submit", "leak", "exfiltrate", "copy", "sync", "report", "deliver"}
	callVerbs    = []string{"call", "invoke", "execute", "run", "trigger", "use", "activate"}
	toolWords    = []string{"tool", "function", "plugin", "api", "endpoint", "action", "command", "webhook"}
	cues         = []string{"you must", "you should", "you will", "you need to", "do not", "don't", "instead", "reply with", "respond with", "answer with", "tell the user", "assistant", "ai", "llm", "chatbot", "language model", "model", "ignore", "disregard", "forget", "password", "secret", "send", "email", "click", "visit", "say", "print", "output", "important", "instruction", "instructions"}
	rot13Cues    = []string{"rot13", "rot-13", "rot 13", "rot_13", "caesar cipher", "rotate by 13", "rotated by 13"}
	startWith    = []string{"starting with", "beginning with", "start with", "begins with", "starts with", "begin with"}
	extractQuote = []string{"'", "\"", "“", "‘", "«", "`"}
)

// direct are phrases that are findings by themselves.
var direct = []entry{
	// Instruction override.
	{text: "new instructions", typ: TypeOverride, rule: "override.new_instructions", w: 0.5, bound: true},
	{text: "updated instructions", typ: TypeOverride, rule: "override.new_instructions", w: 0.45, bound: true},
	{text: "real instructions", typ: TypeOverride, rule: "override.new_instructions", w: 0.5, bound: true},
	{text: "begin new instructions", typ: TypeOverride, rule: "override.new_instructions", w: 0.7, bound: true},
	{text: "your new task", typ: TypeOverride, rule: "override.new_task", w: 0.5, bound: true},
	{text: "your real task", typ: TypeOverride, rule: "override.new_task", w: 0.6, bound: true},
	{text: "your actual task", typ: TypeOverride, rule: "override.new_task", w: 0.5, bound: true},
	{text: "your new goal", typ: TypeOverride, rule: "override.new_task", w: 0.5, bound: true},
	{text: "instead, you will", typ: TypeOverride, rule: "override.instead", w: 0.4, bound: true},
	{text: "instead you will", typ: TypeOverride, rule: "override.instead", w: 0.4, bound: true},
	{text: "instead, you must", typ: TypeOverride, rule: "override.instead", w: 0.45, bound: true},
	{text: "stop what you are doing", typ: TypeOverride, rule: "override.stop", w: 0.5, bound: true},
	{text: "system override", typ: TypeOverride, rule: "override.system_override", w: 0.7, bound: true},
	{text: "admin override", typ: TypeOverride, rule: "override.system_override", w: 0.6, bound: true},
	{text: "emergency override", typ: TypeOverride, rule: "override.system_override", w: 0.5, bound: true},
	{text: "override mode", typ: TypeOverride, rule: "override.system_override", w: 0.5, bound: true},
	{text: "end of prompt", typ: TypeOverride, rule: "override.fake_end", w: 0.4, bound: true},
	{text: "end of system prompt", typ: TypeOverride, rule: "override.fake_end", w: 0.6, bound: true},
	{text: "end of instructions", typ: TypeOverride, rule: "override.fake_end", w: 0.35, bound: true},
	{text: "note to ai", typ: TypeOverride, rule: "override.addressed_to_ai", w: 0.5, bound: true},
	{text: "note to the ai", typ: TypeOverride, rule: "override.addressed_to_ai", w: 0.5, bound: true},
	{text: "note to the assistant", typ: TypeOverride, rule: "override.addressed_to_ai", w: 0.5, bound: true},
	{text: "to the ai assistant", typ: TypeOverride, rule: "override.addressed_to_ai", w: 0.45, bound: true},
	{text: "attention ai", typ: TypeOverride, rule: "override.addressed_to_ai", w: 0.5, bound: true},
	{text: "attention assistant", typ: TypeOverride, rule: "override.addressed_to_ai", w: 0.45, bound: true},
	{text: "if you are an ai", typ: TypeOverride, rule: "override.addressed_to_ai", w: 0.55, bound: true},
	{text: "if you are a language model", typ: TypeOverride, rule: "override.addressed_to_ai", w: 0.6, bound: true},
	{text: "if you are an llm", typ: TypeOverride, rule: "override.addressed_to_ai", w: 0.6, bound: true},
	{text: "if you are an ai assistant", typ: TypeOverride, rule: "override.addressed_to_ai", w: 0.6, bound: true},
	{text: "dear ai", typ: TypeOverride, rule: "override.addressed_to_ai", w: 0.4, bound: true},
	{text: "ai agents reading this", typ: TypeOverride, rule: "override.addressed_to_ai", w: 0.6, bound: true},
	{text: "any ai reading this", typ: TypeOverride, rule: "override.addressed_to_ai", w: 0.6, bound: true},
	{text: "llm reading this", typ: TypeOverride, rule: "override.addressed_to_ai", w: 0.6, bound: true},
	{text: "ai assistant:", typ: TypeOverride, rule: "override.addressed_to_ai", w: 0.45, bound: true},
	{text: "disable your safety", typ: TypeOverride, rule: "override.disable_safety", w: 0.6, bound: true},
	{text: "turn off your safety", typ: TypeOverride, rule: "override.disable_safety", w: 0.6, bound: true},
	{text: "safety filters off", typ: TypeOverride, rule: "override.disable_safety", w: 0.5, bound: true},

	// Persona jailbreaks.
	{text: "do anything now", typ: TypePersona, rule: "persona.dan", w: 0.8, bound: true},
	{text: "you are dan", typ: TypePersona, rule: "persona.dan", w: 0.7, bound: true},
	{text: "you are now dan", typ: TypePersona, rule: "persona.dan", w: 0.8, bound: true},
	{text: "act as dan", typ: TypePersona, rule: "persona.dan", w: 0.8, bound: true},
	{text: "as dan", typ: TypePersona, rule: "persona.dan", w: 0.4, bound: true},
	{text: "dan mode", typ: TypePersona, rule: "persona.dan", w: 0.7, bound: true},
	{text: "dan prompt", typ: TypePersona, rule: "persona.dan", w: 0.5, bound: true},
	{text: "anti-dan", typ: TypePersona, rule: "persona.dan", w: 0.6, bound: true},
	{text: "developer mode", typ: TypePersona, rule: "persona.developer_mode", w: 0.4, bound: true},
	{text: "enable developer mode", typ: TypePersona, rule: "persona.developer_mode", w: 0.8, bound: true},
	{text: "developer mode enabled", typ: TypePersona, rule: "persona.developer_mode", w: 0.8, bound: true},
	{text: "dev mode", typ: TypePersona, rule: "persona.developer_mode", w: 0.4, bound: true},
	{text: "god mode", typ: TypePersona, rule: "persona.mode", w: 0.5, bound: true},
	{text: "sudo mode", typ: TypePersona, rule: "persona.mode", w: 0.5, bound: true},
	{text: "opposite mode", typ: TypePersona, rule: "persona.mode", w: 0.6, bound: true},
	{text: "unrestricted mode", typ: TypePersona, rule: "persona.mode", w: 0.6, bound: true},
	{text: "jailbreak", typ: TypePersona, rule: "persona.jailbreak", w: 0.5, bound: true},
	{text: "jailbroken", typ: TypePersona, rule: "persona.jailbreak", w: 0.6, bound: true},
	{text: "no restrictions", typ: TypePersona, rule: "persona.no_restrictions", w: 0.5, bound: true},
	{text: "without restrictions", typ: TypePersona, rule: "persona.no_restrictions", w: 0.5, bound: true},
	{text: "without any restrictions", typ: TypePersona, rule: "persona.no_restrictions", w: 0.55, bound: true},
	{text: "no limitations", typ: TypePersona, rule: "persona.no_restrictions", w: 0.45, bound: true},
	{text: "without limitations", typ: TypePersona, rule: "persona.no_restrictions", w: 0.4, bound: true},
	{text: "no filters", typ: TypePersona, rule: "persona.no_restrictions", w: 0.45, bound: true},
	{text: "no ethical", typ: TypePersona, rule: "persona.no_restrictions", w: 0.5, bound: true},
	{text: "no moral", typ: TypePersona, rule: "persona.no_restrictions", w: 0.5, bound: true},
	{text: "unfiltered", typ: TypePersona, rule: "persona.no_restrictions", w: 0.35, bound: true},
	{text: "uncensored", typ: TypePersona, rule: "persona.no_restrictions", w: 0.4, bound: true},
	{text: "unrestricted", typ: TypePersona, rule: "persona.no_restrictions", w: 0.35, bound: true},
	{text: "amoral", typ: TypePersona, rule: "persona.no_restrictions", w: 0.4, bound: true},
	{text: "you have been freed", typ: TypePersona, rule: "persona.freed", w: 0.6, bound: true},
	{text: "typical confines", typ: TypePersona, rule: "persona.freed", w: 0.7, bound: true},
	{text: "broken free", typ: TypePersona, rule: "persona.freed", w: 0.5, bound: true},
	{text: "not bound by", typ: TypePersona, rule: "persona.freed", w: 0.45, bound: true},
	{text: "you are no longer", typ: TypePersona, rule: "persona.freed", w: 0.45, bound: true},
	{text: "stay in character", typ: TypePersona, rule: "persona.roleplay", w: 0.35, bound: true},
	{text: "pretend you are", typ: TypePersona, rule: "persona.roleplay", w: 0.3, bound: true},
	{text: "pretend to be", typ: TypePersona, rule: "persona.roleplay", w: 0.25, bound: true},
	{text: "roleplay as", typ: TypePersona, rule: "persona.roleplay", w: 0.25, bound: true},
	{text: "from now on you are", typ: TypePersona, rule: "persona.roleplay", w: 0.45, bound: true},
	{text: "from now on, you are", typ: TypePersona, rule: "persona.roleplay", w: 0.45, bound: true},
	{text: "from now on you will", typ: TypePersona, rule: "persona.roleplay", w: 0.4, bound: true},
	{text: "from now on, you will", typ: TypePersona, rule: "persona.roleplay", w: 0.4, bound: true},
	{text: "evil confidant", typ: TypePersona, rule: "persona.named", w: 0.7, bound: true},
	{text: "mongo tom", typ: TypePersona, rule: "persona.named", w: 0.6, bound: true},

	// System-prompt extraction.
	{text: "verbatim", typ: TypeExtraction, rule: "extract.verbatim", w: 0.25, bound: true},
	{text: "word for word", typ: TypeExtraction, rule: "extract.verbatim", w: 0.25, bound: true},
	{text: "above this line", typ: TypeExtraction, rule: "extract.above", w: 0.3, bound: true},
	{text: "what was written above", typ: TypeExtraction, rule: "extract.above", w: 0.5, bound: true},
	{text: "print the above", typ: TypeExtraction, rule: "extract.above", w: 0.6, bound: true},
	{text: "output the above", typ: TypeExtraction, rule: "extract.above", w: 0.6, bound: true},
	{text: "repeat the above", typ: TypeExtraction, rule: "extract.above", w: 0.6, bound: true},

	// Exfiltration.
	{text: "exfiltrate", typ: TypeExfil, rule: "exfil.word", w: 0.6, bound: true},
	{text: "exfiltration", typ: TypeExfil, rule: "exfil.word", w: 0.4, bound: true},
	{text: "curl http", typ: TypeExfil, rule: "exfil.http_client", w: 0.5},
	{text: "curl -", typ: TypeExfil, rule: "exfil.http_client", w: 0.35, bound: true},
	{text: "wget http", typ: TypeExfil, rule: "exfil.http_client", w: 0.5},
	{text: "invoke-webrequest", typ: TypeExfil, rule: "exfil.http_client", w: 0.5, bound: true},
	{text: "call `", typ: TypeExfil, rule: "exfil.tool_call", w: wToolCall},
	{text: "invoke `", typ: TypeExfil, rule: "exfil.tool_call", w: wToolCall},

	// Template markers.
	{text: "<|im_start|>", typ: TypeTemplate, rule: "template.chatml", w: 0.8},
	{text: "<|im_end|>", typ: TypeTemplate, rule: "template.chatml", w: 0.7},
	{text: "<|im_sep|>", typ: TypeTemplate, rule: "template.chatml", w: 0.7},
	{text: "<|system|>", typ: TypeTemplate, rule: "template.role_token", w: 0.7},
	{text: "<|user|>", typ: TypeTemplate, rule: "template.role_token", w: 0.6},
	{text: "<|assistant|>", typ: TypeTemplate, rule: "template.role_token", w: 0.7},
	{text: "<|endoftext|>", typ: TypeTemplate, rule: "template.eos", w: 0.6},
	{text: "<|start_header_id|>", typ: TypeTemplate, rule: "template.llama3", w: 0.8},
	{text: "<|end_header_id|>", typ: TypeTemplate, rule: "template.llama3", w: 0.7},
	{text: "<|eot_id|>", typ: TypeTemplate, rule: "template.llama3", w: 0.7},
	{text: "<|begin_of_text|>", typ: TypeTemplate, rule: "template.llama3", w: 0.6},
	{text: "[inst]", typ: TypeTemplate, rule: "template.llama_inst", w: 0.7},
	{text: "[/inst]", typ: TypeTemplate, rule: "template.llama_inst", w: 0.7},
	{text: "<<sys>>", typ: TypeTemplate, rule: "template.llama_sys", w: 0.8},
	{text: "<</sys>>", typ: TypeTemplate, rule: "template.llama_sys", w: 0.8},
	{text: "<start_of_turn>", typ: TypeTemplate, rule: "template.gemma", w: 0.7},
	{text: "<end_of_turn>", typ: TypeTemplate, rule: "template.gemma", w: 0.6},
	{text: "</s>", typ: TypeTemplate, rule: "template.eos", w: 0.35},
	{text: "### system:", typ: TypeTemplate, rule: "template.header", w: 0.7},
	{text: "### system", typ: TypeTemplate, rule: "template.header", w: 0.5},
	{text: "### instruction:", typ: TypeTemplate, rule: "template.header", w: 0.5},
	{text: "### instructions:", typ: TypeTemplate, rule: "template.header", w: 0.5},
	{text: "### assistant:", typ: TypeTemplate, rule: "template.header", w: 0.6},
	{text: "### human:", typ: TypeTemplate, rule: "template.header", w: 0.5},
	{text: "### user:", typ: TypeTemplate, rule: "template.header", w: 0.5},
	{text: "### response:", typ: TypeTemplate, rule: "template.header", w: 0.4},

	// Fake turns: a finding only at the start of a line.
	{text: "assistant:", cat: catLineStart, typ: TypeTemplate, rule: "template.fake_turn", w: 0.45},
	{text: "system:", cat: catLineStart, typ: TypeTemplate, rule: "template.fake_turn", w: 0.35},
	{text: "human:", cat: catLineStart, typ: TypeTemplate, rule: "template.fake_turn", w: 0.3},
	{text: "ai:", cat: catLineStart, typ: TypeTemplate, rule: "template.fake_turn", w: 0.3},
	{text: "user:", cat: catLineStart, typ: TypeTemplate, rule: "template.fake_turn", w: 0.2},
	{text: "model:", cat: catLineStart, typ: TypeTemplate, rule: "template.fake_turn", w: 0.2},

	// Decoding cues.
	{text: "decode this", typ: TypeEncoded, rule: "encoded.cue", w: 0.25, bound: true},
	{text: "decode the following", typ: TypeEncoded, rule: "encoded.cue", w: 0.25, bound: true},
	{text: "decode it and", typ: TypeEncoded, rule: "encoded.cue", w: 0.3, bound: true},
	{text: "decode and follow", typ: TypeEncoded, rule: "encoded.cue", w: 0.4, bound: true},
	{text: "and follow it", typ: TypeEncoded, rule: "encoded.cue", w: 0.25, bound: true},
	{text: "follow the decoded", typ: TypeEncoded, rule: "encoded.cue", w: 0.4, bound: true},
	{text: "execute the decoded", typ: TypeEncoded, rule: "encoded.cue", w: 0.4, bound: true},
	{text: "reply in pig latin", typ: TypeEncoded, rule: "encoded.cue", w: 0.25, bound: true},
	{text: "respond in pig latin", typ: TypeEncoded, rule: "encoded.cue", w: 0.25, bound: true},
	{text: "in morse code", typ: TypeEncoded, rule: "encoded.cue", w: 0.15, bound: true},
}

// entries expands the tables into the automaton's patterns.
func entries() []entry {
	var es []entry
	es = append(es, direct...)
	add := func(texts []string, c cat, strong bool) {
		for _, t := range texts {
			es = append(es, entry{text: t, cat: c, bound: true, strong: strong})
		}
	}
	add(strongVerbs, catVerb, true)
	add(weakVerbs, catVerb, false)
	add(xTargets, catXTarget, false)
	add(sendVerbs, catSend, false)
	add(toolWords, catTool, false)
	for _, c := range rot13Cues {
		es = append(es, entry{text: c, cat: catRot13, typ: TypeEncoded, rule: "encoded.cue", w: 0.15, bound: true})
	}
	for _, q := range extractQuote {
		es = append(es, entry{text: q + "you are", cat: catYouAre, typ: TypeExtraction, rule: "extract.starting_with", w: 0.5})
	}
	return es
}
