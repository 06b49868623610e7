package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// EndpointSliceManager is the managed-by label value of the EndpointSlices
// SetEndpoints writes.
const EndpointSliceManager = "keeperlb-lab"

func (l *Lab) kube() error {
	if l.Clientset == nil {
		return fmt.Errorf("lab %s has no control plane", l.Name)
	}
	return nil
}

// ApplyNodes creates or updates a Node object for every lab node: labels
// kubernetes.io/hostname and kubernetes.io/os, InternalIP addresses (IPv4 and
// IPv6), Hostname, and a Ready=True condition. It leaves other labels and
// conditions alone, so it can run again.
func (l *Lab) ApplyNodes(ctx context.Context) error {
	if err := l.kube(); err != nil {
		return err
	}
	api := l.Clientset.CoreV1().Nodes()
	for _, h := range l.Nodes {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			node, err := api.Get(ctx, h.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				node, err = api.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: h.Name}}, metav1.CreateOptions{})
			}
			if err != nil {
				return err
			}
			if node.Labels == nil {
				node.Labels = map[string]string{}
			}
			if node.Labels[corev1.LabelHostname] != h.Name || node.Labels[corev1.LabelOSStable] != "linux" {
				node.Labels[corev1.LabelHostname] = h.Name
				node.Labels[corev1.LabelOSStable] = "linux"
				if node, err = api.Update(ctx, node, metav1.UpdateOptions{}); err != nil {
					return err
				}
			}
			node.Status.Addresses = []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: h.IPv4.String()},
				{Type: corev1.NodeInternalIP, Address: h.IPv6.String()},
				{Type: corev1.NodeHostName, Address: h.Name},
			}
			setCondition(node, corev1.NodeReady, corev1.ConditionTrue)
			_, err = api.UpdateStatus(ctx, node, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			return fmt.Errorf("applying Node %s: %w", h.Name, err)
		}
	}
	return nil
}

// setCondition sets or adds a condition, stamping the transition time only
// when the status changes.
func setCondition(node *corev1.Node, t corev1.NodeConditionType, status corev1.ConditionStatus) {
	now := metav1.NewTime(time.Now())
	for i := range node.Status.Conditions {
		c := &node.Status.Conditions[i]
		if c.Type != t {
			continue
		}
		if c.Status != status {
			c.LastTransitionTime = now
		}
		c.Status, c.LastHeartbeatTime, c.Reason = status, now, "KeeperLBLab"
		return
	}
	node.Status.Conditions = append(node.Status.Conditions, corev1.NodeCondition{
		Type: t, Status: status, LastHeartbeatTime: now, LastTransitionTime: now, Reason: "KeeperLBLab",
	})
}

// SetNodeCondition sets one condition of a Node (e.g. Ready=False or
// NetworkUnavailable=True).
func (l *Lab) SetNodeCondition(ctx context.Context, node string, t corev1.NodeConditionType, status corev1.ConditionStatus) error {
	if err := l.kube(); err != nil {
		return err
	}
	api := l.Clientset.CoreV1().Nodes()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := api.Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		setCondition(n, t, status)
		_, err = api.UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("setting condition %s=%s on Node %s: %w", t, status, node, err)
	}
	return nil
}

// SetNodeLabel sets a label on a Node; an empty value removes it.
func (l *Lab) SetNodeLabel(ctx context.Context, node, key, value string) error {
	if err := l.kube(); err != nil {
		return err
	}
	api := l.Clientset.CoreV1().Nodes()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := api.Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if value == "" {
			delete(n.Labels, key)
		} else {
			if n.Labels == nil {
				n.Labels = map[string]string{}
			}
			n.Labels[key] = value
		}
		_, err = api.Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("setting label %s=%q on Node %s: %w", key, value, node, err)
	}
	return nil
}

// SetEndpoints writes the EndpointSlices of Service ns/svc, as the
// EndpointSlice controller would for pods on the host network: one slice per
// address family (<svc>-lab-ipv4, <svc>-lab-ipv6), one endpoint per node in
// endpoints with the node's address, nodeName and ready = serving = the
// map's value (terminating false), and one TCP port. Nodes left out have no
// endpoint; an empty map leaves the slices empty.
func (l *Lab) SetEndpoints(ctx context.Context, ns, svc string, port int32, endpoints map[string]bool) error {
	if err := l.kube(); err != nil {
		return err
	}
	names := make([]string, 0, len(endpoints))
	for name := range endpoints {
		if l.Node(name) == nil {
			return fmt.Errorf("endpoints of %s/%s: %q is not a node of lab %s", ns, svc, name, l.Name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	for _, fam := range []struct {
		t    discoveryv1.AddressType
		name string
		addr func(*Host) netip.Addr
	}{
		{discoveryv1.AddressTypeIPv4, svc + "-lab-ipv4", func(h *Host) netip.Addr { return h.IPv4 }},
		{discoveryv1.AddressTypeIPv6, svc + "-lab-ipv6", func(h *Host) netip.Addr { return h.IPv6 }},
	} {
		want := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: fam.name, Namespace: ns, Labels: map[string]string{
				discoveryv1.LabelServiceName: svc,
				discoveryv1.LabelManagedBy:   EndpointSliceManager,
			}},
			AddressType: fam.t,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr(""), Port: ptr(port), Protocol: ptr(corev1.ProtocolTCP)}},
		}
		for _, name := range names {
			serving := endpoints[name]
			want.Endpoints = append(want.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{fam.addr(l.Node(name)).String()},
				NodeName:   ptr(name),
				Conditions: discoveryv1.EndpointConditions{Ready: ptr(serving), Serving: ptr(serving), Terminating: ptr(false)},
			})
		}
		api := l.Clientset.DiscoveryV1().EndpointSlices(ns)
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := api.Get(ctx, fam.name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				_, err = api.Create(ctx, want, metav1.CreateOptions{})
				return err
			}
			if err != nil {
				return err
			}
			cur.Labels, cur.AddressType, cur.Ports, cur.Endpoints = want.Labels, want.AddressType, want.Ports, want.Endpoints
			_, err = api.Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			return fmt.Errorf("writing EndpointSlice %s/%s: %w", ns, fam.name, err)
		}
	}
	return nil
}

// DeleteEndpoints removes the EndpointSlices SetEndpoints wrote.
func (l *Lab) DeleteEndpoints(ctx context.Context, ns, svc string) error {
	if err := l.kube(); err != nil {
		return err
	}
	var errs []error
	for _, name := range []string{svc + "-lab-ipv4", svc + "-lab-ipv6"} {
		err := l.Clientset.DiscoveryV1().EndpointSlices(ns).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("deleting EndpointSlices of %s/%s: %w", ns, svc, err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
