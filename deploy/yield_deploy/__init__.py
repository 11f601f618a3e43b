"""Release tool of the yield model API: check the version, publish the wheel, push the image,
bootstrap and deploy the ECS service."""
