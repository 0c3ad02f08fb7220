"""Root conftest: CPU runs must not let `import torch` autoload a (possibly broken) torch_npu.

The kernel seam imports torch_npu explicitly when the npu backend is chosen, so autoload is never needed.
"""

import os

os.environ.setdefault("TORCH_DEVICE_BACKEND_AUTOLOAD", "0")
