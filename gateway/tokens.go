package gateway

import "unicode/utf8"

// EstimateTokens estimates the tokens of a text the way OpenAI's guidance
// does for English (about 4 characters a token), counting runes so that
// non-Latin scripts are not undercounted by much. It is used only when an
// upstream reports no usage; such usage is marked Estimated.
func EstimateTokens(s string) int {
	if s == "" {
		return 0
	}
	n := utf8.RuneCountInString(s)
	if n != len(s) { // non-ASCII: closer to a token per 1.5 runes
		return (n*2 + 2) / 3
	}
	return (n + 3) / 4
}

// EstimatePromptTokens estimates a request's prompt tokens: its message
// texts, tool declarations and a few tokens of framing per message.
func EstimatePromptTokens(r *ChatRequest) int {
	n := 3
	for i := range r.Messages {
		m := &r.Messages[i]
		n += 4 + EstimateTokens(m.Content.String()) + EstimateTokens(m.Name)
		for _, tc := range m.ToolCalls {
			n += EstimateTokens(tc.Function.Name) + EstimateTokens(tc.Function.Arguments)
		}
	}
	for _, t := range r.Tools {
		n += 8 + EstimateTokens(t.Function.Name) + EstimateTokens(t.Function.Description) + len(t.Function.Parameters)/4
	}
	return n
}
