"""How jobs reach Ray: a local Ray or a cluster (`ray_session`), and the one module that touches Ray's
private APIs (`ray_private`)."""
