"""``photo3d batch``: many clips from a manifest or a folder, resumable, on local workers or
Ray. ``manifest`` plans the jobs, ``worker`` makes a group's
clips, ``local`` and ``cluster`` run the workers, ``cli`` ties them together."""
