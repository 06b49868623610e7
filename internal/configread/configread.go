// Package configread reads the metallb.io configuration objects of a
// namespace from the API into the config.Resources that config.Parse takes.
//
// The controller's reconcilers and the admission webhook both read through
// this package, so the webhook judges a change against exactly the set of
// objects the reconcilers will load: same kinds, same namespace, same
// version (BGPPeers in the storage version, v1beta2).
package configread

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/config"
)

// Read lists every configuration object of namespace: pools,
// advertisements, peers, BFD profiles and communities. It reads no
// Secrets: the reconcilers list them all from their cache (ListSecrets),
// while the webhook fetches only those the peers refer to (PeerSecrets).
func Read(ctx context.Context, r client.Reader, namespace string) (config.Resources, error) {
	res := config.Resources{Namespace: namespace}
	in := client.InNamespace(namespace)
	var (
		pools v1beta1.IPAddressPoolList
		l2    v1beta1.L2AdvertisementList
		bgp   v1beta1.BGPAdvertisementList
		peers v1beta2.BGPPeerList
		bfd   v1beta1.BFDProfileList
		comms v1beta1.CommunityList
	)
	for _, l := range []client.ObjectList{&pools, &l2, &bgp, &peers, &bfd, &comms} {
		if err := r.List(ctx, l, in); err != nil {
			return res, fmt.Errorf("listing %T in namespace %s: %w", l, namespace, err)
		}
	}
	res.Pools, res.L2Advs, res.BGPAdvs, res.Peers = pools.Items, l2.Items, bgp.Items, peers.Items
	res.BFDProfiles, res.Communities = bfd.Items, comms.Items
	return res, nil
}

// ListSecrets sets res.Secrets to every Secret of res.Namespace.
func ListSecrets(ctx context.Context, r client.Reader, res *config.Resources) error {
	var secrets corev1.SecretList
	if err := r.List(ctx, &secrets, client.InNamespace(res.Namespace)); err != nil {
		return fmt.Errorf("listing Secrets in namespace %s: %w", res.Namespace, err)
	}
	res.Secrets = secrets.Items
	return nil
}

// PeerSecrets fetches the Secrets that the given peers name in
// passwordSecret, in namespace only (config.Parse refuses a reference to
// another namespace anyway), sorted by name. A Secret that does not exist is
// left out, so that Parse reports the dangling reference as it would in the
// reconcilers.
func PeerSecrets(ctx context.Context, r client.Reader, namespace string, peers ...[]v1beta2.BGPPeer) ([]corev1.Secret, error) {
	var names []string
	for _, list := range peers {
		for i := range list {
			ref := list[i].Spec.PasswordSecret
			if ref.Name == "" || list[i].Namespace != namespace || (ref.Namespace != "" && ref.Namespace != namespace) {
				continue
			}
			names = append(names, ref.Name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	out := make([]corev1.Secret, 0, len(names))
	for _, name := range names {
		var s corev1.Secret
		err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &s)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// Index returns the objects of res by "Kind/name", Kind being one of the
// config.Kind constants, so that a config.FieldError can be traced back to
// its object (for an Event, say). The values point into res's slices.
func Index(res *config.Resources) map[string]client.Object {
	objects := map[string]client.Object{}
	add := func(kind string, o client.Object) { objects[kind+"/"+o.GetName()] = o }
	for i := range res.Pools {
		add(config.KindIPAddressPool, &res.Pools[i])
	}
	for i := range res.L2Advs {
		add(config.KindL2Advertisement, &res.L2Advs[i])
	}
	for i := range res.BGPAdvs {
		add(config.KindBGPAdvertisement, &res.BGPAdvs[i])
	}
	for i := range res.Peers {
		add(config.KindBGPPeer, &res.Peers[i])
	}
	for i := range res.BFDProfiles {
		add(config.KindBFDProfile, &res.BFDProfiles[i])
	}
	for i := range res.Communities {
		add(config.KindCommunity, &res.Communities[i])
	}
	return objects
}
