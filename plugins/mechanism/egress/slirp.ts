/**
 * slirp4netns 1.2 default addressing (`--cidr` unset; IPv6 with `--enable-ipv6`,
 * measured here: the guest takes a SLAAC address in fd00::/64 from the router
 * advertisement, its default route is `via fe80::2`).
 *
 * libslirp translates EVERY address of its virtual network other than the DNS
 * address to the host's loopback (`--disable-host-loopback` then refuses it), and
 * the DNS address to the host's resolver: so the whole virtual network is "the host".
 */
export const SLIRP = {
  network: "10.0.2.0",
  prefix: 24,
  gateway: "10.0.2.2",
  dns: "10.0.2.3",
  guest: "10.0.2.100",
  networkV6: "fd00::",
  prefixV6: 64,
  gatewayV6: "fd00::2",
  dnsV6: "fd00::3",
  /** The router's link-local address: the guest's IPv6 default route goes through it. */
  routerLinkLocalV6: "fe80::2",
} as const;

/** The slirp virtual networks (every address there is the host) and the slirp router's link-local address. */
export const SLIRP_HOST_RANGES = [
  `${SLIRP.network}/${SLIRP.prefix}`,
  `${SLIRP.networkV6}/${SLIRP.prefixV6}`,
  `${SLIRP.routerLinkLocalV6}/128`,
] as const;
