"""``photo3d batch``: many clips from a manifest or a folder, resumable, on local workers or
Ray. ``manifest`` plans the jobs, ``runners`` runs them."""
