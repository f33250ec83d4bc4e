"""Models: the reference models (``reference``), the segmentation-LMM framework (``core``) and its
families (``plum``, ``lisa``, ``glamm``), all implementing the eval protocol."""
