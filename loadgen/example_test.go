package loadgen_test

import (
	"context"
	"log"
	"net/url"
	"os"
	"time"

	"aigw/loadgen"
)

// Compare straight calls to a fake upstream with calls through a bare
// reverse proxy, at 500 requests/s and at open throttle.
func ExampleCompare() {
	fake, err := loadgen.Start(loadgen.NewFakeUpstream(loadgen.FakeConfig{}))
	if err != nil {
		log.Fatal(err)
	}
	defer fake.Close()
	target, _ := url.Parse(fake.URL)
	proxy, err := loadgen.Start(loadgen.BareProxy(target))
	if err != nil {
		log.Fatal(err)
	}
	defer proxy.Close()

	targets := []loadgen.Target{{Name: "straight", URL: fake.URL}, {Name: "proxy", URL: proxy.URL}}
	var cs []loadgen.Comparison
	for _, rate := range []float64{500, 0} {
		cfg := loadgen.Config{
			URL:      "/v1/chat/completions",
			Body:     []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}]}`),
			Rate:     rate,
			Duration: 3 * time.Second,
			Warmup:   time.Second,
		}
		c, err := loadgen.Compare(context.Background(), cfg, targets, 5)
		if err != nil {
			log.Fatal(err)
		}
		cs = append(cs, c)
	}
	loadgen.Report(os.Stdout, cs...)
}
