"""Network architectures of the learned engines, in plain torch (no I/O, no downloads).

Each module's parameter names match its reference implementation, so the published
weights load with ``load_state_dict(strict=True)``; tests build tiny randomly
initialised instances of the same classes.

- ``depth_anything``: Depth Anything V2 (DINOv2 ViT-S/B/L encoder + DPT head).
- ``midas``: MiDaS v3 DPT-Large 384 (ViT-L/16 encoder + DPT head).
- ``rrdbnet``: Real-ESRGAN x4plus generator (RRDBNet).
- ``srvgg``: SRVGGNetCompact (Real-ESRGAN's compact models, e.g. realesr-animevideov3).
"""
