set -euo pipefail
# crashcart: the kernel release is only known once the image boots. Tag the new AMI (in the
# build Region) with it; the tag key is the only one the instance role may write, and only on
# AMIs that carry this pipeline's crashcart:pipeline tag.
# aws-assumption: ec2-tag-condition-keys
release=$(uname -r)
echo "crashcart: kernel release ${release}"
aws_cli=$(command -v aws || true)
if [ -z "$aws_cli" ] && [ -x /opt/crashcart/awscli/bin/aws ]; then
  aws_cli=/opt/crashcart/awscli/bin/aws  # installed for the crashcart agent
fi
if [ -z "$aws_cli" ]; then
  echo "crashcart: NOTE: no AWS CLI on this image: the AMI is not tagged crashcart:kernel-release"
  exit 0
fi
imds=http://169.254.169.254/latest
token=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "${imds}/api/token")
ami_id=$(curl -fsS -H "X-aws-ec2-metadata-token: ${token}" "${imds}/meta-data/ami-id")
region=$(curl -fsS -H "X-aws-ec2-metadata-token: ${token}" "${imds}/meta-data/placement/region")
"$aws_cli" ec2 create-tags --region "$region" --resources "$ami_id" \
  --tags "Key=crashcart:kernel-release,Value=${release}"
echo "crashcart: tagged ${ami_id} crashcart:kernel-release=${release}"
