/** A registry name for manifests whose pods the simulated kubelet runs (nothing is pulled). */
export const REGISTRY = 'registry.local:5000';

/** The example app's manifests: a config map, a LoadBalancer service and a Deployment. */
export function appManifest(name: string, replicas = 2): string {
  return `apiVersion: v1
kind: ConfigMap
metadata:
  name: ${name}-config
data:
  MODEL_PATH: /model/ResNet_152.model
---
apiVersion: v1
kind: Service
metadata:
  name: ${name}
spec:
  type: LoadBalancer
  selector:
    app: ${name}
  ports:
    - port: 80
      targetPort: 5000
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
spec:
  replicas: ${replicas}
  selector:
    matchLabels:
      app: ${name}
  template:
    metadata:
      labels:
        app: ${name}
    spec:
      initContainers:
        - name: warm-model
          image: ${REGISTRY}/ai-app:latest
          command: ["python", "-c", "import app"]
      containers:
        - name: app
          image: ${REGISTRY}/ai-app:latest
          ports:
            - containerPort: 5000
          envFrom:
            - configMapRef:
                name: ${name}-config
`;
}
