package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

func TestClassifyDisconnect(t *testing.T) {
	cases := []struct {
		reason api.PeerState_DisconnectReason
		detail string
		prev   string
		bfd    bool
		want   string
	}{
		{api.PeerState_DISCONNECT_REASON_HOLD_TIMER_EXPIRED, "hold-timer-expired", "Established", false, ReasonHoldTimerExpired},
		{api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED, "notification-received code 2(open) subcode 2(bad peer as)", "OpenConfirm", false, ReasonASNMismatch},
		{api.PeerState_DISCONNECT_REASON_BAD_PEER_AS, "bad-peer-as", "OpenSent", false, ReasonASNMismatch},
		{api.PeerState_DISCONNECT_REASON_NOTIFICATION_SENT, "notification-sent code 2(open) subcode 2(bad peer as)", "OpenSent", false, ReasonASNMismatch},
		{api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED, "notification-received code 2(open) subcode 3(bad bgp identifier)", "OpenConfirm", false, ReasonOpenRejected},
		{api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED, "notification-received code 6(cease) subcode 2(administrative shutdown)", "Established", false, ReasonNotificationReceived},
		{api.PeerState_DISCONNECT_REASON_NOTIFICATION_SENT, "notification-sent code 6(cease) subcode 4(administrative reset)", "Established", true, ReasonBFDDown},
		{api.PeerState_DISCONNECT_REASON_NOTIFICATION_SENT, "notification-sent code 6(cease) subcode 4(administrative reset)", "Established", false, ReasonNotificationSent},
		{api.PeerState_DISCONNECT_REASON_READ_FAILED, "read-failed", "Established", false, ReasonConnectionClosed},
		{api.PeerState_DISCONNECT_REASON_INVALID_MSG, "invalid-msg", "OpenConfirm", false, ReasonOpenRejected},
		{api.PeerState_DISCONNECT_REASON_INVALID_MSG, "invalid-msg", "Established", false, ReasonNotificationSent},
		{api.PeerState_DISCONNECT_REASON_UNSPECIFIED, "", "Established", false, ""},
	}
	for _, c := range cases {
		got, msg := classifyDisconnect(c.reason, c.detail, c.prev, c.bfd)
		if got != c.want {
			t.Errorf("classifyDisconnect(%v, %q, %s, bfd %v) = %q (%s), want %q", c.reason, c.detail, c.prev, c.bfd, got, msg, c.want)
		}
		if got != "" && msg == "" {
			t.Errorf("reason %s without a message", got)
		}
	}
}

func TestClassifyConnectError(t *testing.T) {
	cases := []struct {
		err      string
		password bool
		want     string
	}{
		{"dial tcp 198.18.0.11:0->198.18.0.1:179: connect: connection refused", false, ReasonConnectionRefused},
		{"dial tcp 198.18.0.11:0->198.18.0.1:179: i/o timeout", true, ReasonPasswordMismatch},
		{"dial tcp 198.18.0.11:0->198.18.0.1:179: i/o timeout", false, ReasonNoResponse},
		{"dial tcp 198.18.0.11:0->198.18.0.1:179: connect: no route to host", false, ReasonUnreachable},
		{"dial tcp 198.18.9.9:0->198.18.0.1:179: bind: cannot assign requested address", false, ReasonConnectError},
	}
	for _, c := range cases {
		if got, _ := classifyConnectError(c.err, c.password); got != c.want {
			t.Errorf("classifyConnectError(%q, %v) = %q, want %q", c.err, c.password, got, c.want)
		}
	}
}

func TestDescribeOpenVerdict(t *testing.T) {
	pc := ebgp("r", rtrV4)
	id := netip.MustParseAddr("10.0.0.1")
	cases := []struct {
		v    openVerdict
		want string
		text string
	}{
		{openVerdict{code: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, subcode: bgp.BGP_ERROR_SUB_BAD_PEER_AS}, ReasonASNMismatch, "AS 64512"},
		{openVerdict{code: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, subcode: bgp.BGP_ERROR_SUB_BAD_BGP_IDENTIFIER}, ReasonOpenRejected, "router ID 10.0.0.1"},
		{openVerdict{code: bgp.BGP_ERROR_CEASE, subcode: bgp.BGP_ERROR_SUB_CONNECTION_REJECTED}, ReasonNotificationReceived, "connection rejected"},
		{openVerdict{accepted: true}, ReasonOpenRejected, "transient"},
	}
	for _, c := range cases {
		got, msg := describeOpenVerdict(c.v, pc, id)
		if got != c.want || !strings.Contains(msg, c.text) {
			t.Errorf("describeOpenVerdict(%+v) = %q %q, want %q containing %q", c.v, got, msg, c.want, c.text)
		}
	}
}

// TestTrackerNotifiesTransitionsAndReasons checks that callers hear about
// up, down and new reasons in order, and not about every retry.
func TestTrackerNotifiesTransitionsAndReasons(t *testing.T) {
	var mu sync.Mutex
	var got []string
	done := make(chan struct{}, 16)
	tr := newTracker(func(s SessionState) {
		mu.Lock()
		got = append(got, s.State+"/"+s.Reason)
		mu.Unlock()
		done <- struct{}{}
	})
	defer tr.stop()
	addr := rtrV4
	pc := ebgp("r", addr)
	pc.Password = "x"
	tr.add(pc)
	tr.connectFailed(addr, "i/o timeout")
	tr.connectFailed(addr, "i/o timeout") // same reason: silent
	tr.peerEvent(addr, bgp.BGP_FSM_ACTIVE, 0, api.PeerState_DISCONNECT_REASON_UNSPECIFIED, "")
	tr.peerEvent(addr, bgp.BGP_FSM_OPENSENT, 0, api.PeerState_DISCONNECT_REASON_UNSPECIFIED, "")
	tr.peerEvent(addr, bgp.BGP_FSM_ESTABLISHED, 64500, api.PeerState_DISCONNECT_REASON_UNSPECIFIED, "")
	tr.bfdWentDown(addr)
	tr.peerEvent(addr, bgp.BGP_FSM_IDLE, 64500, api.PeerState_DISCONNECT_REASON_NOTIFICATION_SENT, "notification-sent code 6(cease) subcode 4(administrative reset)")
	tr.peerEvent(addr, bgp.BGP_FSM_ACTIVE, 0, api.PeerState_DISCONNECT_REASON_UNSPECIFIED, "")
	tr.remove(addr)
	tr.peerEvent(addr, bgp.BGP_FSM_ESTABLISHED, 64500, api.PeerState_DISCONNECT_REASON_UNSPECIFIED, "") // removed: silent
	want := []string{"Idle/" + ReasonPasswordMismatch, "Established/", "Idle/" + ReasonBFDDown}
	for range want {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("callbacks so far: %v, want %v", got, want)
		}
	}
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("callbacks: %v, want %v", got, want)
	}
}

// TestLogHookForwardsAndObserves checks that GoBGP's records still reach
// the caller's handler at the caller's level, while the hook reads the
// connect errors GoBGP logs at debug level.
func TestLogHookForwardsAndObserves(t *testing.T) {
	var sb strings.Builder
	tr := newTracker(nil)
	defer tr.stop()
	pc := ebgp("r", rtrV4)
	tr.add(pc)
	h := &logHook{next: slog.NewTextHandler(&sb, &slog.HandlerOptions{Level: slog.LevelInfo}), tracker: tr}
	log := slog.New(h).With("Topic", "Peer", "Key", rtrV4.String())
	log.Debug("failed to connect", "Error", "dial tcp: connect: connection refused")
	log.Info("Peer Up")
	info, _ := tr.info(rtrV4)
	if info.reason != ReasonConnectionRefused {
		t.Errorf("reason after a refused connect: %q", info.reason)
	}
	out := sb.String()
	if strings.Contains(out, "failed to connect") || !strings.Contains(out, "Peer Up") {
		t.Errorf("forwarded log: %q; want the info record only", out)
	}
	if !h.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("the hook must see debug records")
	}
}
