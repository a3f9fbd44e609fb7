import { ConfigurationError } from '../../src/common/errors';
import { parseChallenge } from '../../src/build-push/oci/challenge';
import {
  parseImageReference,
  validateRegistry,
  validateRepository,
  validateTag,
} from '../../src/common/image-reference';

describe('image references', () => {
  it('accepts what Distribution accepts', () => {
    expect(validateRepository('ai/image-classifier')).toBe('ai/image-classifier');
    expect(validateRepository('a/b_c/d__e/f.g/h--i')).toBe('a/b_c/d__e/f.g/h--i');
    expect(validateRegistry('myacr.azurecr.io')).toBe('myacr.azurecr.io');
    expect(validateRegistry('127.0.0.1:5000')).toBe('127.0.0.1:5000');
    expect(validateTag('0123456789ab-fedcba987654')).toBe('0123456789ab-fedcba987654');
  });

  it.each(['AI/classifier', 'ai//x', 'ai/-x', 'ai/x-', 'ai/x y', '', 'ai/x:1'])(
    'refuses repository %p, naming the input',
    (value) => {
      expect(() => validateRepository(value)).toThrow(ConfigurationError);
      expect(() => validateRepository(value)).toThrow(/^Invalid repository '/);
    },
  );

  it('says that repositories must be lower case', () => {
    expect(() => validateRepository('AI/Classifier')).toThrow(/must be lower case/);
  });

  it.each(['-x', '.x', 'a/b', 'x'.repeat(129), 'a b'])('refuses tag %p', (value) => {
    expect(() => validateTag(value)).toThrow(/Invalid tag/);
  });

  it('refuses an upper-case or malformed registry', () => {
    expect(() => validateRegistry('MyAcr.azurecr.io')).toThrow(
      /Invalid registry 'MyAcr.azurecr.io'/,
    );
    expect(() => validateRegistry('my acr')).toThrow(ConfigurationError);
  });

  it('parses base images with and without registry, tag and digest', () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    expect(parseImageReference('ai/app-base:1.0', 'base-image', 'r.io')).toEqual({
      registry: 'r.io',
      repository: 'ai/app-base',
      tag: '1.0',
      digest: undefined,
    });
    expect(parseImageReference(`127.0.0.1:5000/ai/app@${digest}`, 'base-image', 'r.io')).toEqual({
      registry: '127.0.0.1:5000',
      repository: 'ai/app',
      tag: undefined,
      digest,
    });
    expect(parseImageReference('myacr.azurecr.io/app', 'base-image', 'r.io').tag).toBeUndefined();
    expect(() => parseImageReference('ai/app@sha256:zz', 'base-image', 'r.io')).toThrow(
      /Invalid base-image 'ai\/app@sha256:zz'/,
    );
    expect(() => parseImageReference('ai/App:1', 'base-image', 'r.io')).toThrow(
      /Invalid base-image/,
    );
  });
});

describe('WWW-Authenticate challenges', () => {
  it('parses an ACR bearer challenge', () => {
    expect(
      parseChallenge(
        'Bearer realm="https://myacr.azurecr.io/oauth2/token",service="myacr.azurecr.io",scope="repository:ai/x:pull,push",error="invalid_token"',
      ),
    ).toEqual({
      scheme: 'bearer',
      realm: 'https://myacr.azurecr.io/oauth2/token',
      service: 'myacr.azurecr.io',
      scope: 'repository:ai/x:pull,push',
      error: 'invalid_token',
    });
  });

  it('parses basic challenges, bare values and escapes', () => {
    expect(parseChallenge('Basic realm="Registry \\"x\\""')).toMatchObject({
      scheme: 'basic',
      realm: 'Registry "x"',
    });
    expect(parseChallenge('bearer realm=https://r/t, service=r')).toMatchObject({
      realm: 'https://r/t',
      service: 'r',
    });
    expect(parseChallenge('Negotiate abc')).toBeUndefined();
    expect(parseChallenge(undefined)).toBeUndefined();
  });
});
