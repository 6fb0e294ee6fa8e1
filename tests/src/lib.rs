//! End-to-end lab for nsbeacon: network namespaces, an upstream BIRD router, the node's DNS and BGP daemons.
