package grounding_test

import (
	"fmt"

	"aigw/gateway/guard/grounding"
)

func Example() {
	docs := grounding.Documents([]string{
		"Answer from the context.\n[1] Revenue was $1,200,000 in 2024.\n[2] Margins were 12.4 percent.",
	})
	c := grounding.New(grounding.Config{})
	answer := "Revenue was $1.2M [1] with a 12% margin [2], up from 9% in 2023 [3]."
	score, findings := c.Check(docs, answer)
	fmt.Printf("score %.2f, flagged %v\n", score, c.Exceeds(score))
	for _, f := range findings {
		fmt.Printf("%s %q\n", f.Type, answer[f.Start:f.End])
	}
	// Output:
	// score 0.41, flagged true
	// number_not_in_context "9%"
	// number_not_in_context "2023"
	// citation_out_of_range "3"
}
