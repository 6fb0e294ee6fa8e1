//! Network namespaces and veth pairs for lab topologies, deleted on drop.
