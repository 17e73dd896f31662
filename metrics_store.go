package twofactor

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// instrumentedStore times a store's transactions and counts those that
// failed because the store could not answer. It wraps the store itself,
// under the session cache, so every backend is measured alike and none
// of them knows about metrics.
type instrumentedStore struct {
	store.Store
	view, update             prometheus.Observer
	viewErrors, updateErrors prometheus.Counter
}

// instrumentStore returns st measured under the backend label. What else
// st can do (compact its file, claim notices) stays reachable through
// Unwrap (see store.As).
func instrumentStore(st store.Store, backend string) store.Store {
	i := instrumentedStore{
		Store:        st,
		view:         storeOperationSeconds.WithLabelValues(backend, "view"),
		update:       storeOperationSeconds.WithLabelValues(backend, "update"),
		viewErrors:   storeErrors.WithLabelValues(backend, "view"),
		updateErrors: storeErrors.WithLabelValues(backend, "update"),
	}
	return i
}

// View implements store.Store.
func (s instrumentedStore) View(fn func(store.Tx) error) error {
	start := time.Now()
	err := s.Store.View(fn)
	observeStoreOp(s.view, s.viewErrors, start, err)
	return err
}

// Update implements store.Store.
func (s instrumentedStore) Update(fn func(store.Tx) error) error {
	start := time.Now()
	err := s.Store.Update(fn)
	observeStoreOp(s.update, s.updateErrors, start, err)
	return err
}

// Unwrap returns the store measured.
func (s instrumentedStore) Unwrap() store.Store { return s.Store }

// observeStoreOp records a transaction that began at start and ended with err.
func observeStoreOp(took prometheus.Observer, failed prometheus.Counter, start time.Time, err error) {
	took.Observe(time.Since(start).Seconds())
	if storeUnavailable(err) {
		failed.Inc()
	}
}

// storesCollector reports, at each scrape, every open store's session
// counts by stage and its session cache's counts.
type storesCollector struct{}

var (
	storeLabels  = []string{"backend", "store"}
	sessionsDesc = prometheus.NewDesc(metricName("sessions"),
		"Sessions in the store by stage (pending: password only; full: signed in), including expired ones the sweep has not deleted yet; counted at most once per sweep interval.",
		[]string{"backend", "store", "stage"}, nil)
	cacheHitsDesc = prometheus.NewDesc(metricName("session_cache_hits_total"),
		"Signed-in requests whose session was served from memory.", storeLabels, nil)
	cacheMissesDesc = prometheus.NewDesc(metricName("session_cache_misses_total"),
		"Requests with a session cookie whose session was not in memory and was read from the store.", storeLabels, nil)
	cacheInvalidationsDesc = prometheus.NewDesc(metricName("session_cache_invalidations_total"),
		"Committed writes, of this instance or another sharing the store, that dropped sessions or users from the cache.", storeLabels, nil)
)

// Describe implements prometheus.Collector.
func (storesCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sessionsDesc
	ch <- cacheHitsDesc
	ch <- cacheMissesDesc
	ch <- cacheInvalidationsDesc
}

// storeSample is what one scrape reports of a store.
type storeSample struct {
	sessions                    store.SessionCounts
	hits, misses, invalidations float64
	counted                     bool
}

// Collect implements prometheus.Collector. Databases that are one store
// under one name (a Redis server opened with different credentials) are
// reported as one.
func (storesCollector) Collect(ch chan<- prometheus.Metric) {
	var dbs []*database
	// The pool is locked while it is ranged over: count afterwards.
	databases.Range(func(_, v any) bool {
		dbs = append(dbs, v.(*database))
		return true
	})
	now := time.Now()
	samples := make(map[[2]string]*storeSample, len(dbs))
	for _, db := range dbs {
		id := [2]string{db.backend, db.path}
		s := samples[id]
		if s == nil {
			s = new(storeSample)
			samples[id] = s
		}
		if !s.counted {
			s.sessions, s.counted = db.storedSessions(now)
		}
		stats := db.cache.Stats()
		s.hits += float64(stats.Hits)
		s.misses += float64(stats.Misses)
		s.invalidations += float64(stats.Invalidations)
	}
	for id, s := range samples {
		if s.counted {
			ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(s.sessions.Pending), id[0], id[1], "pending")
			ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(s.sessions.Full), id[0], id[1], "full")
		}
		ch <- prometheus.MustNewConstMetric(cacheHitsDesc, prometheus.CounterValue, s.hits, id[0], id[1])
		ch <- prometheus.MustNewConstMetric(cacheMissesDesc, prometheus.CounterValue, s.misses, id[0], id[1])
		ch <- prometheus.MustNewConstMetric(cacheInvalidationsDesc, prometheus.CounterValue, s.invalidations, id[0], id[1])
	}
}

// storedSessions returns the number of sessions in the store by stage,
// counted at most once per sweepInterval (the counts change with every
// sign-in; a scrape need not ask the store each time); false if the store
// could not count them.
func (db *database) storedSessions(now time.Time) (store.SessionCounts, bool) {
	if at, n := db.sessionsCountedAt.Load(), db.sessionsCount.Load(); at != 0 && n != nil && now.Sub(time.Unix(0, at)) < sweepInterval {
		return *n, true
	}
	var n store.SessionCounts
	err := db.raw.View(func(tx store.Tx) error {
		var err error
		n, err = tx.CountSessions()
		return err
	})
	if err != nil {
		return n, false
	}
	db.sessionsCount.Store(&n)
	db.sessionsCountedAt.Store(now.UnixNano())
	return n, true
}

// Interface guards
var (
	_ store.Store          = instrumentedStore{}
	_ prometheus.Collector = storesCollector{}
)
