"""Paper re-implementations: YOLOv1, ViT and DETR, built on the assignments' modules."""
