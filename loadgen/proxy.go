package loadgen

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

// BareProxy returns the baseline every proxy pays: an
// [httputil.ReverseProxy] to target that flushes every write at once
// (FlushInterval -1, so streams pass through unbuffered), over a transport
// tuned for one busy upstream (1024 idle keep-alive connections, no HTTP/2,
// no transparent compression), with pooled copy buffers, and nothing else:
// no logging, no body inspection.
//
// It enables full duplex on each request ([http.ResponseController]), and
// must: ReverseProxy streams the request body to the upstream unbuffered,
// and once a handler writes its response header, net/http's HTTP/1 server
// consumes and closes what is left of the request body unless full duplex
// is on. When the upstream answers after the last body byte but before the
// transport's final read of the body (which must return EOF), that close
// makes the read fail, the transport drops the upstream connection, and
// the client's stream is cut: a fraction of a percent of streams, more
// under load.
func BareProxy(target *url.URL) http.Handler {
	rp := reverseProxy(target)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex() // an error means HTTP/2, which needs none
		rp.ServeHTTP(w, r)
	})
}

// reverseProxy is BareProxy without full duplex.
func reverseProxy(target *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
		},
		FlushInterval: -1,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		BufferPool: &bufferPool{},
		ErrorLog:   log.New(io.Discard, "", 0),
	}
}

// bufferPool recycles ReverseProxy's 32 KiB copy buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
