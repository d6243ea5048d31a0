"""GAN training and sampling, drawn as terminal art."""
