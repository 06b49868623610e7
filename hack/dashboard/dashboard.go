package main

import (
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// UID is the dashboard's uid: fixed, so that the Grafana sidecar replaces
// the dashboard on an upgrade instead of adding a second one.
const UID = "keeperlb"

// Variable names. The test allows exactly these (and Grafana's own
// $__rate_interval and $__interval) in queries.
const (
	datasourceVar = "datasource"
	namespaceVar  = "namespace"
)

// sel is a selector of metric in the namespaces picked on the dashboard,
// with extra matchers appended.
func sel(metric string, matchers ...string) string {
	return fmt.Sprintf("%s{%s}", metric, strings.Join(append([]string{`namespace=~"$` + namespaceVar + `"`}, matchers...), ","))
}

// rate is the per-second rate of a counter over Grafana's rate interval.
func rate(selector string) string {
	return "rate(" + selector + "[$__rate_interval])"
}

// increase is a counter's increase over Grafana's rate interval.
func increase(selector string) string {
	return "increase(" + selector + "[$__rate_interval])"
}

// keeperlbOnly keeps the series of expr that come from a KeeperLB process:
// every controller and speaker exports metallb_k8s_client_updates_total
// from its start, and the join is on the target labels that a scrape adds
// (job and instance), so a process series from anything else in the
// namespace is left out without naming a job.
func keeperlbOnly(expr string) string {
	return expr + " and on (job, instance) " + sel("metallb_k8s_client_updates_total")
}

// orZero makes a count or sum read 0 instead of "No data" when no series
// match (no BGP peer configured, nothing announced yet).
func orZero(expr string) string {
	return expr + " or vector(0)"
}

// query is one target of a panel.
type query struct {
	expr, legend string
	// instant asks for the latest value only, for tables.
	instant bool
}

func q(expr, legend string) query { return query{expr: expr, legend: legend} }

// builder numbers the panels as they are made: Grafana wants every panel
// id unique within the dashboard.
type builder struct {
	nextID uint32
}

func (b *builder) id() uint32 {
	b.nextID++
	return b.nextID
}

func datasource() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${" + datasourceVar + "}")}
}

func targets(qs []query) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], 0, len(qs))
	for i, x := range qs {
		t := prometheus.NewDataqueryBuilder().
			Datasource(datasource()).
			RefId(string(rune('A' + i))).
			Expr(x.expr).
			LegendFormat(x.legend)
		if x.instant {
			t = t.Instant().Format(prometheus.PromQueryFormatTable)
		} else {
			t = t.Range()
		}
		out = append(out, t)
	}
	return out
}

// graph is a time series panel, w columns of 24 wide.
func (b *builder) graph(title, desc, unit string, w uint32, qs ...query) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Id(b.id()).
		Title(title).
		Description(desc).
		Datasource(datasource()).
		Unit(unit).
		Span(w).
		Height(8).
		FillOpacity(10).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom).
			ShowLegend(true)).
		Targets(targets(qs))
}

// stacked is a graph whose series add up (Services by reason, addresses by
// node).
func (b *builder) stacked(title, desc, unit string, w uint32, qs ...query) *timeseries.PanelBuilder {
	return b.graph(title, desc, unit, w, qs...).
		Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)).
		FillOpacity(40)
}

// bars is a graph of counts per interval (ownership changes, BFD downs).
func (b *builder) bars(title, desc string, w uint32, qs ...query) *timeseries.PanelBuilder {
	return b.stacked(title, desc, "short", w, qs...).
		DrawStyle(common.GraphDrawStyleBars).
		FillOpacity(80)
}

// single is a stat panel showing the latest value of one query; red from
// redAt up when redAt > 0.
func (b *builder) single(title, desc, unit string, expr string, redAt float64) *stat.PanelBuilder {
	steps := []dashboard.Threshold{{Color: "green"}}
	if redAt > 0 {
		steps = append(steps, dashboard.Threshold{Value: cog.ToPtr(redAt), Color: "red"})
	}
	return stat.NewPanelBuilder().
		Id(b.id()).
		Title(title).
		Description(desc).
		Datasource(datasource()).
		Unit(unit).
		Span(4).
		Height(4).
		ColorMode(common.BigValueColorModeBackground).
		GraphMode(common.BigValueGraphModeNone).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		Thresholds(dashboard.NewThresholdsConfigBuilder().
			Mode(dashboard.ThresholdsModeAbsolute).
			Steps(steps)).
		Targets(targets([]query{{expr: expr}}))
}

func (b *builder) row(title string) *dashboard.RowBuilder {
	return dashboard.NewRowBuilder(title).Id(b.id())
}

// Dashboard returns the builder of KeeperLB's dashboard.
func Dashboard() *dashboard.DashboardBuilder {
	b := &builder{}
	d := dashboard.NewDashboardBuilder("KeeperLB").
		Uid(UID).
		Description("KeeperLB (a MetalLB replacement): address pools, Services waiting for addresses, who announces what, layer 2 ownership, BGP and BFD sessions, speaker liveness, and the health of the controller and the speakers. Generated by hack/dashboard; edit the generator, not this JSON.").
		Tags([]string{"keeperlb", "metallb", "load-balancer"}).
		Editable().
		Refresh("30s").
		Time("now-3h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder(datasourceVar).
			Label("Data source").
			Type("prometheus")).
		WithVariable(dashboard.NewQueryVariableBuilder(namespaceVar).
			Label("Namespace").
			Description("Namespaces KeeperLB runs in (metallb-system by default).").
			Datasource(datasource()).
			Query(dashboard.StringOrMap{String: cog.ToPtr("label_values(metallb_k8s_client_updates_total, namespace)")}).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).
			IncludeAll(true).
			// All matches every namespace, and series without one (a
			// scrape configuration that adds no namespace label).
			AllValue(".*").
			Current(dashboard.VariableOption{
				Selected: cog.ToPtr(true),
				Text:     dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}},
				Value:    dashboard.StringOrArrayOfString{ArrayOfString: []string{"$__all"}},
			}))

	// Overview: one number each, red when something needs a look.
	d = d.WithRow(b.row("Overview")).
		WithPanel(b.single("Fullest pool", "The highest share of addresses in use of any IPAddressPool (metallb_allocator_addresses_in_use_total / metallb_allocator_addresses_total).", "percentunit",
			orZero("max("+poolUsage+")"), 0.9).Min(0).Max(1)).
		WithPanel(b.single("Services waiting", "LoadBalancer Services without the addresses they need, whatever the reason (keeperlb_controller_services_waiting).", "short",
			orZero("sum(max by (reason) ("+waiting+"))"), 1)).
		WithPanel(b.single("Addresses announced", "Distinct addresses some speaker announces (metallb_speaker_announced).", "short",
			orZero("count(count by (ip) ("+sel("metallb_speaker_announced")+"))"), 0)).
		WithPanel(b.single("BGP sessions down", "BGP sessions that are not established, over all speakers (metallb_bgp_session_up).", "short",
			orZero("sum(1 - "+sel("metallb_bgp_session_up")+")"), 1)).
		WithPanel(b.single("Configuration stale", "Processes running on an older configuration because the latest does not load (metallb_k8s_client_config_stale_bool), plus those that never loaded one (metallb_k8s_client_config_loaded_bool = 0).", "short",
			orZero("sum("+sel("metallb_k8s_client_config_stale_bool")+") + sum(1 - "+sel("metallb_k8s_client_config_loaded_bool")+")"), 1)).
		WithPanel(b.single("Heartbeat auth failures (1h)", "Heartbeats refused in the last hour because their MAC matched no key (keeperlb_speaker_heartbeat_auth_failures_total): a memberlist key that differs between speakers, or a forgery.", "short",
			orZero("sum(increase("+sel("keeperlb_speaker_heartbeat_auth_failures_total")+"[1h]))"), 1))

	d = d.WithRow(b.row("Address pools")).
		WithPanel(b.graph("Pool usage", "Share of each IPAddressPool's addresses held by at least one Service. A pool at 100% leaves new Services waiting with reason PoolExhausted.", "percentunit", 12,
			q("max by (pool) ("+poolUsage+")", "{{pool}}")).Min(0).Max(1)).
		WithPanel(b.graph("Addresses in use and available", "Per pool: addresses in use, and all it can hand out (both families).", "short", 12,
			q("max by (pool) ("+sel("metallb_allocator_addresses_in_use_total")+")", "{{pool}} in use"),
			q("max by (pool) ("+sel("metallb_allocator_addresses_total")+")", "{{pool}} total"))).
		WithPanel(b.graph("Addresses in use by family", "IPv4 and IPv6 addresses in use, per pool.", "short", 12,
			q("max by (pool) ("+sel("metallb_allocator_ipv4_addresses_in_use_total")+")", "{{pool}} IPv4"),
			q("max by (pool) ("+sel("metallb_allocator_ipv6_addresses_in_use_total")+")", "{{pool}} IPv6"))).
		WithPanel(b.graph("Services per pool", "Services holding addresses from each pool; Services sharing an address count once each (metallb_allocator_services_allocated_total).", "short", 12,
			q("max by (pool) ("+sel("metallb_allocator_services_allocated_total")+")", "{{pool}}")))

	d = d.WithRow(b.row("Pending Services")).
		WithPanel(b.stacked("Services waiting, by reason", "LoadBalancer Services without the addresses they need, by the reason of their keeperlb.io/IPAllocated condition (PoolExhausted, NoMatchingPool, IPInUse, ...). `kubectl describe svc` shows the Event that says more.", "short", 12,
			q("max by (reason) ("+waiting+")", "{{reason}}"))).
		WithPanel(b.graph("Allocation latency", "Time from when the controller first saw a Service lacking addresses to the status write that gave them; a Service that waited for a free address counts its whole wait.", "s", 12,
			q("histogram_quantile(0.5, sum by (le) ("+rate(sel("keeperlb_controller_allocation_duration_seconds_bucket"))+"))", "p50"),
			q("histogram_quantile(0.99, sum by (le) ("+rate(sel("keeperlb_controller_allocation_duration_seconds_bucket"))+"))", "p99"))).
		WithPanel(b.graph("Allocations", "Services given addresses per second.", "ops", 24,
			q("sum("+rate(sel("keeperlb_controller_allocation_duration_seconds_count"))+")", "allocations")))

	announced := sel("metallb_speaker_announced")
	whoAnnounces := table.NewPanelBuilder().
		Id(b.id()).
		Title("Who announces what").
		Description("Every address a speaker announces now: over layer 2 one node per address, over BGP every node that advertises it (metallb_speaker_announced).").
		Datasource(datasource()).
		Span(24).
		Height(10).
		Targets(targets([]query{{expr: "max by (service, ip, protocol, node) (" + announced + ")", instant: true}})).
		WithTransformation(dashboard.DataTransformerConfig{
			Id: "organize",
			Options: map[string]any{
				"excludeByName": map[string]any{"Time": true, "Value": true},
				"indexByName":   map[string]any{"service": 0, "ip": 1, "protocol": 2, "node": 3},
			},
		})
	d = d.WithRow(b.row("Announcements")).
		WithPanel(whoAnnounces).
		WithPanel(b.stacked("Addresses announced per node", "How many addresses each node announces, by protocol: a node carrying everything, or none, stands out.", "short", 12,
			q("count by (node, protocol) ("+announced+")", "{{node}} {{protocol}}"))).
		WithPanel(b.bars("Layer 2 ownership changes", "Layer 2 addresses that moved to another node in each interval, by why: peer_dead (its heartbeats stopped), peer_left (it said it was leaving), peer_joined (a better candidate came alive), config (the configuration, a Node or the endpoints changed). Each move is counted once in the cluster.", 12,
			q("sum by (reason) ("+increase(sel("keeperlb_layer2_ownership_changes_total"))+")", "{{reason}}"))).
		WithPanel(b.graph("ARP and NDP", "Requests received for announced addresses, answers sent, and gratuitous announcements (sent when a node takes an address over).", "pps", 12,
			q("sum by (ip) ("+rate(sel("metallb_layer2_requests_received"))+")", "{{ip}} requests"),
			q("sum by (ip) ("+rate(sel("metallb_layer2_responses_sent"))+")", "{{ip}} responses"),
			q("sum by (ip) ("+rate(sel("metallb_layer2_gratuitous_sent"))+")", "{{ip}} gratuitous")))

	d = d.WithRow(b.row("BGP and BFD")).
		WithPanel(b.graph("BGP sessions", "1 when the session from a speaker (instance) to a peer is established.", "short", 12,
			q(sel("metallb_bgp_session_up"), "{{instance}} → {{peer}}")).Min(0).Max(1)).
		WithPanel(b.graph("Prefixes", "Prefixes each peer receives from each speaker, and those the speaker's plan sends (they differ while updates are on their way).", "short", 12,
			q(sel("metallb_bgp_announced_prefixes_total"), "{{instance}} → {{peer}} announced"),
			q(sel("metallb_bgp_pending_prefixes_total"), "{{instance}} → {{peer}} planned"))).
		WithPanel(b.graph("BGP messages", "UPDATE messages sent and BGP messages of any type received, per session.", "ops", 12,
			q(rate(sel("metallb_bgp_updates_total")), "{{instance}} → {{peer}} updates sent"),
			q(rate(sel("metallb_bgp_total_received")), "{{instance}} → {{peer}} received"))).
		WithPanel(b.graph("BFD sessions", "1 when the BFD session of a BGP session with a BFD profile is up.", "short", 12,
			q(sel("metallb_bfd_session_up"), "{{instance}} → {{peer}}")).Min(0).Max(1)).
		WithPanel(b.stacked("BFD session states", "BFD sessions by state (Down, Init, Up, AdminDown), over all speakers (keeperlb_bfd_session_state).", "short", 12,
			q("sum by (state) ("+sel("keeperlb_bfd_session_state")+")", "{{state}}"))).
		WithPanel(b.bars("BFD session downs", "Times a BFD session went down from up, per interval: each one takes the BGP session down with it.", 12,
			q("sum by (instance, peer) ("+increase(sel("metallb_bfd_session_down_events"))+")", "{{instance}} → {{peer}}")))

	d = d.WithRow(b.row("Liveness")).
		WithPanel(b.graph("Live speakers", "Speakers each speaker sees alive and ready, itself included, and how many speakers are scraped: a speaker that sees fewer than the others is cut off from them (or they from it).", "short", 12,
			q(sel("keeperlb_speaker_live_members"), "seen by {{instance}}"),
			q("count("+sel("keeperlb_speaker_live_members")+")", "speakers scraped"))).
		WithPanel(b.graph("Heartbeats refused", "Datagrams on the liveness port that were not taken as heartbeats, per second: auth failures (no key matches: a key mismatch or a forgery), unknown (not from a known peer's own address), stale (replays, reordered), dropped by the kernel (from a non-node address, or a full queue).", "pps", 12,
			q("sum by (instance) ("+rate(sel("keeperlb_speaker_heartbeat_auth_failures_total"))+")", "{{instance}} auth failures"),
			q("sum by (instance) ("+rate(sel("keeperlb_speaker_heartbeat_unknown_total"))+")", "{{instance}} unknown"),
			q("sum by (instance) ("+rate(sel("keeperlb_speaker_heartbeat_stale_total"))+")", "{{instance}} stale"),
			q("sum by (instance) ("+rate(sel("keeperlb_speaker_heartbeat_dropped_total"))+")", "{{instance}} dropped")))

	d = d.WithRow(b.row("Controller and speaker health")).
		WithPanel(b.graph("Scrape targets up", "1 for each KeeperLB process Prometheus scrapes, 0 while a scrape fails (targets that exported KeeperLB metrics in the last hour).", "short", 12,
			q(sel("up")+" and on (job, instance) last_over_time("+sel("metallb_k8s_client_updates_total")+"[1h])", "{{job}} {{instance}}")).Min(0).Max(1)).
		WithPanel(b.graph("Configuration", "Per process: loaded (1 once a configuration loaded) and stale (1 while the latest one does not load, so an older one is in force). Only the leading controller replica exports them.", "short", 12,
			q(sel("metallb_k8s_client_config_loaded_bool"), "{{job}} {{instance}} loaded"),
			q(sel("metallb_k8s_client_config_stale_bool"), "{{job}} {{instance}} stale")).Min(0).Max(1)).
		WithPanel(b.graph("Reconcile passes", "Passes over Kubernetes objects per second, and the failed ones that are retried (metallb_k8s_client_updates_total, metallb_k8s_client_update_errors_total).", "ops", 12,
			q("sum by (job, instance) ("+rate(sel("metallb_k8s_client_updates_total"))+")", "{{job}} {{instance}}"),
			q("sum by (job, instance) ("+rate(sel("metallb_k8s_client_update_errors_total"))+")", "{{job}} {{instance}} errors"))).
		WithPanel(b.graph("Status writer backlog", "How far each speaker's ServiceL2Status, ServiceBGPStatus and BGPSessionState objects are behind what it announces; 0 when they are up to date.", "s", 12,
			q(sel("keeperlb_speaker_status_backlog_seconds"), "{{instance}}"))).
		WithPanel(b.graph("Status write latency", "99th percentile of the time a speaker's status writer takes to bring the status objects in line with one pass, by result (success, error).", "s", 12,
			q("histogram_quantile(0.99, sum by (le, result) ("+rate(sel("keeperlb_speaker_status_write_duration_seconds_bucket"))+"))", "p99 {{result}}"))).
		WithPanel(b.graph("Status writes", "Status writes per second over all speakers, by result; errors are retried with backoff.", "ops", 12,
			q("sum by (result) ("+rate(sel("keeperlb_speaker_status_write_duration_seconds_count"))+")", "{{result}}"))).
		WithPanel(b.graph("Memory", "Resident memory of each KeeperLB process.", "bytes", 8,
			q(keeperlbOnly(sel("process_resident_memory_bytes")), "{{job}} {{instance}}"))).
		WithPanel(b.graph("CPU", "CPU time each KeeperLB process uses, in cores.", "short", 8,
			q(keeperlbOnly(rate(sel("process_cpu_seconds_total"))), "{{job}} {{instance}}"))).
		WithPanel(b.graph("Goroutines", "Goroutines of each KeeperLB process; one that keeps growing leaks.", "short", 8,
			q(keeperlbOnly(sel("go_goroutines")), "{{job}} {{instance}}")))
	return d
}

// poolUsage is each pool's share of addresses in use, per exporting
// controller replica. A pool with no addresses reads 0, not NaN.
var poolUsage = sel("metallb_allocator_addresses_in_use_total") + " / clamp_min(" + sel("metallb_allocator_addresses_total") + ", 1)"

// waiting is the waiting Services per reason and replica. Every replica
// exports every reason (a standby at 0), so panels take the max per reason
// rather than the sum.
var waiting = sel("keeperlb_controller_services_waiting")
