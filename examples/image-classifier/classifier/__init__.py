"""A handwritten-digit classifier served over HTTP: the example AI app of this repository."""

# The app's own version; the image build may override it with the APP_VERSION environment variable.
__version__ = "1.0.0"
