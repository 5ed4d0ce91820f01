package injection
import ("testing";"fmt";"unsafe";"aigw/gateway/guard/textnorm")
func TestQuick(t *testing.T){
	d := New(Config{})
	n := textnorm.Normalize(prompt4K, shadowOptions).Norm
	ms := d.ac.FindAllOverlapping(unsafe.Slice(unsafe.StringData(n), len(n)))
	cnt := map[string]int{}
	for _, m := range ms { cnt[n[m.Start:m.End]]++ }
	fmt.Println(len(ms), cnt, d.ac.StateCount(), d.ac.PatternCount())
}
